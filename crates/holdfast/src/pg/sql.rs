//! SQL text built on the client side: quoting of identifiers and literals for
//! the few statements whose names cannot be bound as parameters.

/// `"name"`, with embedded double quotes doubled: always quoted, so reserved
/// words and mixed case survive.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded single quotes doubled. The result is meant for a server
/// with `standard_conforming_strings = on` (the default since PostgreSQL 9.1), so
/// backslashes need no escaping.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers_and_literals() {
        assert_eq!(quote_ident("hosts"), "\"hosts\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("back\\slash"), "'back\\slash'");
        assert_eq!(
            qualified("audit", "Host Changes"),
            "\"audit\".\"Host Changes\""
        );
    }
}
