//! Words as systemd's `ExecStart=` and `/bin/sh` (cron's shell) read them
//! back: quoting, and the values neither can carry.

use crate::{Error, Result};

/// Refuse a value no quoting carries through a unit file and a cron line:
/// control characters (a newline ends the setting or the cron line), and a
/// backslash before `%` (cron keeps `\\` but then ends the command at the
/// `%`).
pub fn check_value(option: &str, value: &str) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(Error::usage(format!(
            "{option} {value:?}: a control character (newline, tab, ...) cannot be written into a unit or a cron line"
        )));
    }
    if value.contains("\\%") {
        return Err(Error::usage(format!(
            "{option} {value:?}: a backslash before '%' cannot be written into a cron line"
        )));
    }
    Ok(())
}

/// Characters that need no quoting in either syntax.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b))
}

/// One word for `/bin/sh`: as it is when plain, else in single quotes.
pub fn sh(s: &str) -> String {
    if plain(s) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Words for `/bin/sh`, space-separated.
pub fn sh_words(words: &[String]) -> String {
    words.iter().map(|w| sh(w)).collect::<Vec<_>>().join(" ")
}

/// One word of a systemd command line: `%` doubled (a specifier otherwise)
/// and `$` doubled (an environment variable otherwise), in double quotes
/// with `\` and `"` escaped unless plain.
pub fn systemd(s: &str) -> String {
    let escaped = s.replace('%', "%%").replace('$', "$$");
    if plain(s) {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', r"\\").replace('"', "\\\""))
    }
}

/// Words of a systemd command line, space-separated.
pub fn systemd_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| systemd(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A command for a cron line: cron turns an unescaped `%` into a newline.
pub fn cron(command: &str) -> String {
    command.replace('%', r"\%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(sh("/usr/bin/holdfast"), "/usr/bin/holdfast");
        assert_eq!(sh("it's here"), r"'it'\''s here'");
        assert_eq!(sh(""), "''");
    }

    #[test]
    fn systemd_words_escape_specifiers_and_variables() {
        assert_eq!(systemd("/var/log/holdfast"), "/var/log/holdfast");
        assert_eq!(systemd("a b"), "\"a b\"");
        assert_eq!(systemd("100%"), "\"100%%\"");
        assert_eq!(systemd("$HOME"), "\"$$HOME\"");
        assert_eq!(systemd(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn refused_values() {
        assert!(check_value("--x", "a\nb").is_err());
        assert!(check_value("--x", r"a\%b").is_err());
        assert!(check_value("--x", "a%b $c 'd'").is_ok());
    }
}
