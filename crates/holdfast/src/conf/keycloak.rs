//! Keycloak's `conf/keycloak.conf` (`db-username=…`, `db-password=…`,
//! `db-url=jdbc:postgresql://…`): Java properties whose values then pass
//! through SmallRye Config's expression expansion.
//!
//! SmallRye turns `\$` into a literal `$` (its `escapeDollarIfExists`) and
//! expands `${name}`, so a new value is written with every `$` as `\$` at
//! that level, which the properties escaping doubles in the file:
//! `db-password=my\\$\\$password` is `my$$password` (Keycloak's own docs).
//! Since no `$$` is ever written, old and new SmallRye releases (which differ
//! on `$$`) read it alike. Reading undoes the same steps and refuses a value
//! that is an expression (`${KC_DB_PASSWORD}`), which holdfast does not expand.

use super::format::{ConfError, ConfFormat, ConfResult};
use super::properties::{encode_value, literal_changes, parse, rewrite_encoded};
use super::ConfValue;

/// Keycloak's `keycloak.conf`; a key path is the option name (`db-password`).
pub struct Keycloak;

impl ConfFormat for Keycloak {
    fn name(&self) -> &'static str {
        "keycloak"
    }

    fn read(&self, text: &str, key: &str) -> ConfResult<Option<String>> {
        let Some(raw) = parse(text)?.remove(key) else {
            return Ok(None);
        };
        expand(&raw)
            .map(Some)
            .map_err(|what| ConfError::Invalid(format!("{key} {what}")))
    }

    fn rewrite(&self, text: &str, changes: &[(String, ConfValue)]) -> ConfResult<String> {
        let values = literal_changes(changes, |_, value| Ok(encode_value(&escape(value))))?;
        // The properties-level text is the escaped value.
        let values: Vec<(String, String, String)> = values
            .into_iter()
            .map(|(k, v, e)| (k, escape(&v), e))
            .collect();
        let out = rewrite_encoded(text, &values)?;
        for (key, value) in changes {
            let ConfValue::Literal(value) = value else {
                continue;
            };
            if self.read(&out, key)?.as_deref() != Some(value.as_str()) {
                return Err(ConfError::Refused(format!(
                    "cannot write {key}: Keycloak would read another value back"
                )));
            }
        }
        Ok(out)
    }
}

/// Every `$` as SmallRye's literal-dollar escape `\$`.
fn escape(value: &str) -> String {
    value.replace('$', "\\$")
}

/// A properties-level value as SmallRye Config reads it: `$$` kept, `\$` a
/// `$`, `$$` then one `$`; an expression is an error.
fn expand(raw: &str) -> Result<String, String> {
    // escapeDollarIfExists: "$$" -> "$$$$", then "\$" -> "$$".
    let prepared = raw.replace("$$", "$$$$").replace("\\$", "$$");
    let mut out = String::new();
    let mut chars = prepared.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                return Err(format!(
                    "is an expression ({raw}) that Keycloak expands and holdfast does not; write the value itself in the file"
                ))
            }
            _ => out.push('$'),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "# Basic settings for running in production.\ndb=postgres\ndb-username=keycloak\ndb-password=my\\\\$\\\\$password\ndb-url=jdbc:postgresql://localhost/keycloak\nhostname=kc.example.org\n";

    fn lit(k: &str, v: &str) -> (String, ConfValue) {
        (k.into(), ConfValue::Literal(v.into()))
    }

    #[test]
    fn reads_keycloak_escapes() {
        assert_eq!(
            Keycloak.read(CONF, "db-password").unwrap().as_deref(),
            Some("my$$password")
        );
        assert_eq!(
            Keycloak.read(CONF, "db-username").unwrap().as_deref(),
            Some("keycloak")
        );
        assert!(Keycloak
            .read("db-password=${KC_PW}\n", "db-password")
            .is_err());
        assert_eq!(
            Keycloak.read("a=x$y\n", "a").unwrap().as_deref(),
            Some("x$y")
        );
    }

    #[test]
    fn writes_dollars_escaped() {
        let new = Keycloak
            .rewrite(
                CONF,
                &[
                    lit("db-password", "p$${x}\\$ é"),
                    lit("db-url-port", "5433"),
                ],
            )
            .unwrap();
        assert_eq!(
            new,
            CONF.replace("my\\\\$\\\\$password", "p\\\\$\\\\${x}\\\\\\\\$ \\u00E9")
                + "db-url-port=5433\n"
        );
        assert_eq!(
            Keycloak.read(&new, "db-password").unwrap().as_deref(),
            Some("p$${x}\\$ é")
        );
    }
}
