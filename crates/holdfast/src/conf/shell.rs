//! Shell-style `KEY="value"` files behind the [`ConfFormat`] trait: reading with
//! [`ConfValues`] (oVirt's `ShellLikeConfd` rules) and rewriting with
//! [`rewrite`](super::rewrite)'s line replacement, unchanged.

use super::format::{ConfError, ConfFormat, ConfResult};
use super::rewrite::replace_assignments;
use super::values::is_key;
use super::{ConfValue, ConfValues};

/// Shell-style `KEY="value"` files. A key path is the key itself.
pub struct Shell;

impl ConfFormat for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }

    /// The value as the file alone assigns it; `${VAR}` may only refer to
    /// keys of the same file here (profiles' `[config].sources` read several).
    fn read(&self, text: &str, key: &str) -> ConfResult<Option<String>> {
        let mut values = ConfValues::new();
        values
            .parse_str(text, "line")
            .map_err(|e| ConfError::Invalid(e.to_string()))?;
        Ok(values.get(key).map(str::to_string))
    }

    /// Every assignment line of a changed key replaced by `KEY="value"`,
    /// absent keys appended, exactly as [`rewrite_keys`](super::rewrite_keys).
    fn rewrite(&self, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String> {
        for (key, value) in changes {
            if !is_key(key) {
                return Err(ConfError::Refused(format!(
                    "cannot write key {key:?}: a key is letters, digits and '_'"
                )));
            }
            let (ConfValue::Literal(v) | ConfValue::Raw(v)) = value;
            if v.contains(['\n', '\r', '\0']) {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: the value contains a newline or NUL character"
                )));
            }
        }
        let out = replace_assignments(text.as_bytes(), changes);
        String::from_utf8(out).map_err(|_| ConfError::Invalid("not UTF-8 text".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rewrites_like_the_shell_style_writer() {
        let text = "# c\nA=\"1\"\nB=x # t\n";
        assert_eq!(Shell.read(text, "A").unwrap().as_deref(), Some("1"));
        assert_eq!(Shell.read(text, "Z").unwrap(), None);
        let new = Shell
            .rewrite(text, &[("A".into(), ConfValue::Literal("a b$".into()))])
            .unwrap();
        assert_eq!(new, "# c\nA=\"a b\\$\"\nB=x # t\n");
        assert!(matches!(
            Shell.rewrite(text, &[("A".into(), ConfValue::Literal("x\ny".into()))]),
            Err(ConfError::Refused(_))
        ));
    }
}
