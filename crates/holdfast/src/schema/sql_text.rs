//! SQL script text: split into statements the way psql does, with the line each
//! statement starts on, and the facts the runner needs about them (psql
//! meta-commands, statements that cannot run inside a transaction block).
//!
//! The runner sends one statement at a time over its one connection, so a failure
//! names the statement and its line, and a script's own `BEGIN`/`COMMIT` behaves as
//! it does under psql.

use crate::{Error, Result};

/// One SQL statement of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The text from its first significant character to its `;` (inclusive).
    pub text: String,
    /// 1-based line of the file where the statement starts.
    pub line: usize,
    /// Upper-cased words outside quotes and comments, in order.
    words: Vec<String>,
}

impl Statement {
    /// 1-based line of the file holding the character at 1-based `position`
    /// (a server error's character offset into this statement's text).
    pub fn line_of_position(&self, position: usize) -> usize {
        let before = self.text.chars().take(position.saturating_sub(1));
        self.line + before.filter(|c| *c == '\n').count()
    }

    /// The statement's first line, shortened for a one-line message.
    pub fn summary(&self) -> String {
        let first = self.text.lines().next().unwrap_or("").trim();
        if first.chars().count() > 80 {
            format!("{}…", first.chars().take(80).collect::<String>())
        } else {
            first.to_string()
        }
    }

    /// Why this statement cannot run inside a transaction block, if it cannot.
    pub fn transaction_blocker(&self) -> Option<&'static str> {
        let w = |i: usize| self.words.get(i).map(String::as_str).unwrap_or("");
        match w(0) {
            "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" => {
                return Some("its own transaction control (BEGIN/COMMIT)")
            }
            "VACUUM" => return Some("VACUUM"),
            "ALTER" if w(1) == "SYSTEM" => return Some("ALTER SYSTEM"),
            "CREATE" | "DROP" if w(1) == "DATABASE" || w(1) == "TABLESPACE" => {
                return Some("CREATE/DROP DATABASE or TABLESPACE")
            }
            "REINDEX" if w(1) == "DATABASE" || w(1) == "SYSTEM" => {
                return Some("REINDEX DATABASE/SYSTEM")
            }
            _ => {}
        }
        let concurrent_ddl = matches!(w(0), "CREATE" | "DROP" | "REINDEX");
        if concurrent_ddl && self.words.iter().any(|x| x == "CONCURRENTLY") {
            return Some("CONCURRENTLY");
        }
        None
    }
}

/// Split `text` (the content of `file`, named in errors) into statements.
///
/// Quotes, `E''` strings, quoted identifiers, dollar-quoted bodies, `--` and nested
/// `/* */` comments and parentheses are honoured. A backslash outside all of these is
/// a psql meta-command, which holdfast does not run: it is refused with its line.
pub fn split(file: &str, text: &str) -> Result<Vec<Statement>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut start: Option<(usize, usize)> = None;
    let mut words: Vec<String> = Vec::new();
    let mut parens: i64 = 0;
    // BEGIN ATOMIC … END bodies (and CASE … END inside them) of CREATE FUNCTION /
    // PROCEDURE hold semicolons, as psql's lexer knows.
    let mut begin_depth: usize = 0;
    let unterminated = |what: &str, at: usize| {
        Error::invalid(format!(
            "{file} line {at}: unterminated {what}; close it or fix the quoting"
        ))
    };

    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            if c == '\n' {
                line += 1;
            }
            i += 1;
            continue;
        }
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            let opened = line;
            let mut depth = 0;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (None, _) => return Err(unterminated("/* comment", opened)),
                    (Some('/'), Some('*')) => {
                        depth += 1;
                        i += 2;
                    }
                    (Some('*'), Some('/')) => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    (Some(ch), _) => {
                        if *ch == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            continue;
        }
        if start.is_none() {
            start = Some((i, line));
        }
        match c {
            '\'' => {
                let escapes = i > 0
                    && matches!(chars[i - 1], 'E' | 'e')
                    && (i < 2 || !is_ident_char(chars[i - 2]));
                let opened = line;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(unterminated("string literal", opened)),
                        Some('\\') if escapes => {
                            if chars.get(i + 1) == Some(&'\n') {
                                line += 1;
                            }
                            i += 2;
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => i += 2,
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            if *ch == '\n' {
                                line += 1;
                            }
                            i += 1;
                        }
                    }
                }
            }
            '"' => {
                let opened = line;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(unterminated("quoted identifier", opened)),
                        Some('"') if chars.get(i + 1) == Some(&'"') => i += 2,
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            if *ch == '\n' {
                                line += 1;
                            }
                            i += 1;
                        }
                    }
                }
            }
            '$' => match dollar_tag(&chars, i) {
                Some(tag_len) => {
                    let tag: Vec<char> = chars[i..i + tag_len].to_vec();
                    let opened = line;
                    i += tag_len;
                    loop {
                        if i >= chars.len() {
                            return Err(unterminated("dollar-quoted string", opened));
                        }
                        if chars[i] == '$' && chars[i..].starts_with(&tag) {
                            i += tag_len;
                            break;
                        }
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
                None => i += 1,
            },
            '\\' => {
                return Err(Error::invalid(format!(
                    "{file} line {line}: psql meta-command ('\\…') found; holdfast runs plain \
                     SQL only: replace it with SQL"
                )))
            }
            '(' => {
                parens += 1;
                i += 1;
            }
            ')' => {
                parens -= 1;
                i += 1;
            }
            ';' if parens <= 0 && begin_depth == 0 => {
                let (s, l) = start.take().unwrap_or((i, line));
                out.push(Statement {
                    text: chars[s..=i].iter().collect(),
                    line: l,
                    words: std::mem::take(&mut words),
                });
                parens = 0;
                begin_depth = 0;
                i += 1;
            }
            c if c.is_alphabetic() || c == '_' => {
                let from = i;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                let word = chars[from..i].iter().collect::<String>().to_uppercase();
                if (word == "BEGIN" || word == "CASE") && creates_routine(&words) {
                    begin_depth += 1;
                } else if word == "END" && begin_depth > 0 {
                    begin_depth -= 1;
                }
                words.push(word);
            }
            _ => i += 1,
        }
    }
    if let Some((s, l)) = start {
        let text: String = chars[s..].iter().collect();
        out.push(Statement {
            text: text.trim_end().to_string(),
            line: l,
            words,
        });
    }
    Ok(out)
}

/// Whether the words so far start `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
fn creates_routine(words: &[String]) -> bool {
    let w = |i: usize| words.get(i).map(String::as_str);
    let routine = |x: Option<&str>| matches!(x, Some("FUNCTION" | "PROCEDURE"));
    w(0) == Some("CREATE")
        && (routine(w(1)) || (w(1) == Some("OR") && w(2) == Some("REPLACE") && routine(w(3))))
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Length of the dollar-quote tag (`$$`, `$body$`) starting at `i`, if one does.
fn dollar_tag(chars: &[char], i: usize) -> Option<usize> {
    if i > 0 && is_ident_char(chars[i - 1]) {
        return None;
    }
    let mut j = i + 1;
    if let Some(first) = chars.get(j) {
        if first.is_ascii_digit() {
            return None; // `$1`: a parameter, not a quote
        }
    }
    while let Some(&c) = chars.get(j) {
        if c == '$' {
            return Some(j - i + 1);
        }
        if !(c.is_alphanumeric() || c == '_') {
            return None;
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split("t.sql", sql)
            .unwrap()
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_bodies() {
        let sql = "select 'a;b';\n-- c;\nselect \"x;\" from t; /* ; /* ; */ */\n\
                   create function f() returns int as $fn$ begin return 1; end $fn$ language plpgsql;\n\
                   select $$;$$; select E'\\';' ; select 1";
        assert_eq!(
            texts(sql),
            vec![
                "select 'a;b';",
                "select \"x;\" from t;",
                "create function f() returns int as $fn$ begin return 1; end $fn$ language plpgsql;",
                "select $$;$$;",
                "select E'\\';' ;",
                "select 1",
            ]
        );
    }

    #[test]
    fn lines_count_from_the_file_start() {
        let stmts = split("t.sql", "\n\n-- header\nselect 1;\n\nselect\n  x\nfrom y;").unwrap();
        assert_eq!(stmts[0].line, 4);
        assert_eq!(stmts[1].line, 6);
        // position 10 is the `x` on the statement's second line
        assert_eq!(stmts[1].line_of_position(10), 7);
    }

    #[test]
    fn meta_commands_are_refused_with_their_line() {
        let err = split("up.sql", "select 1;\n\\i other.sql\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "up.sql line 2: psql meta-command ('\\…') found; holdfast runs plain SQL only: \
             replace it with SQL"
        );
        // a backslash inside a string or body is just text
        assert!(split("ok.sql", "select '\\n'; select $$ \\x $$;").is_ok());
    }

    #[test]
    fn detects_statements_that_need_autocommit() {
        let blocker = |sql: &str| {
            split("t.sql", sql)
                .unwrap()
                .iter()
                .find_map(|s| s.transaction_blocker())
        };
        assert_eq!(
            blocker("create index concurrently i on t(a);"),
            Some("CONCURRENTLY")
        );
        assert_eq!(blocker("VACUUM ANALYZE t;"), Some("VACUUM"));
        assert!(blocker("begin; update t set a=1; commit;").is_some());
        assert_eq!(blocker("select 'concurrently'; -- vacuum\n"), None);
        assert_eq!(
            blocker(
                "create function f() returns void as $$ begin vacuum; end $$ language plpgsql;"
            ),
            None
        );
    }

    #[test]
    fn sql_standard_bodies_keep_their_semicolons() {
        let sql = "create or replace function f(x int) returns int language sql\n\
                   begin atomic\n  select case when x > 0 then 1 else 0 end;\n  select 2;\nend;\n\
                   select 3;";
        let stmts = texts(sql);
        assert_eq!(stmts.len(), 2, "{stmts:?}");
        assert!(stmts[0].ends_with("end;"));
        assert_eq!(stmts[1], "select 3;");
        // a transaction's BEGIN is no body
        assert_eq!(texts("begin; select 1; commit;").len(), 3);
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert!(split("t.sql", "select 'abc").is_err());
        assert!(split("t.sql", "select $$ abc").is_err());
    }

    #[test]
    fn dollar_inside_identifiers_and_parameters_is_not_a_quote() {
        assert_eq!(
            texts("select a$b$ from t; select $1;"),
            vec!["select a$b$ from t;", "select $1;"]
        );
    }
}
