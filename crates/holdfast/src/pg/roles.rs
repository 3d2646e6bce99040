//! The roles a database needs on the server it is restored into: its owner, the
//! owner of every object in it, and every role named in a privilege (grantee,
//! grantor, default privileges, policies), excluding `PUBLIC`, the bootstrap
//! superuser and the predefined `pg_*` roles, which every server has.
//!
//! holdfast captures these itself from `pg_roles` instead of `pg_dumpall
//! --globals-only`, which needs `pg_authid` and fails on managed servers;
//! password hashes are read from `pg_authid` only where it is readable.

use std::collections::BTreeSet;

use crate::pg::restore::DumpSource;
use crate::pg::sql::{quote_ident, quote_literal};
use crate::pg::{error_text, PgTools};
use crate::{Error, Result};

/// A role's definition, enough to create it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDef {
    /// Role name, unquoted.
    pub name: String,
    /// `LOGIN`.
    pub login: bool,
    /// `SUPERUSER`.
    pub superuser: bool,
    /// `CREATEDB`.
    pub createdb: bool,
    /// `CREATEROLE`.
    pub createrole: bool,
    /// `INHERIT`.
    pub inherit: bool,
    /// `REPLICATION`.
    pub replication: bool,
    /// `BYPASSRLS`.
    pub bypassrls: bool,
    /// `-1` for no limit.
    pub connection_limit: i32,
    /// Password expiry in UTC (`2030-01-01 00:00:00+00`) or `infinity`.
    pub valid_until: Option<String>,
    /// Roles this role is a direct member of, sorted.
    pub member_of: Vec<String>,
    /// The stored password hash (`SCRAM-SHA-256$…` or `md5…`); `None` when the
    /// role has no password or it could not be read.
    pub password_hash: Option<String>,
    /// Whether `pg_authid` was readable: when `false`, `password_hash` is `None`
    /// for lack of privilege, not because the role has no password.
    pub password_readable: bool,
}

/// The OIDs of every role the connected database refers to.
const NEEDED_ROLE_OIDS: &str = "
WITH acls(acl) AS (
        SELECT datacl FROM pg_database WHERE datname = current_database()
  UNION ALL SELECT nspacl FROM pg_namespace
  UNION ALL SELECT relacl FROM pg_class
  UNION ALL SELECT attacl FROM pg_attribute WHERE attacl IS NOT NULL
  UNION ALL SELECT proacl FROM pg_proc
  UNION ALL SELECT typacl FROM pg_type
  UNION ALL SELECT lomacl FROM pg_largeobject_metadata
  UNION ALL SELECT defaclacl FROM pg_default_acl
  UNION ALL SELECT lanacl FROM pg_language
  UNION ALL SELECT fdwacl FROM pg_foreign_data_wrapper
  UNION ALL SELECT srvacl FROM pg_foreign_server
),
needed(oid) AS (
        SELECT datdba FROM pg_database WHERE datname = current_database()
  UNION SELECT nspowner FROM pg_namespace
  UNION SELECT relowner FROM pg_class
  UNION SELECT proowner FROM pg_proc
  UNION SELECT typowner FROM pg_type
  UNION SELECT lomowner FROM pg_largeobject_metadata
  UNION SELECT extowner FROM pg_extension
  UNION SELECT lanowner FROM pg_language
  UNION SELECT collowner FROM pg_collation
  UNION SELECT conowner FROM pg_conversion
  UNION SELECT oprowner FROM pg_operator
  UNION SELECT opcowner FROM pg_opclass
  UNION SELECT opfowner FROM pg_opfamily
  UNION SELECT cfgowner FROM pg_ts_config
  UNION SELECT dictowner FROM pg_ts_dict
  UNION SELECT stxowner FROM pg_statistic_ext
  UNION SELECT fdwowner FROM pg_foreign_data_wrapper
  UNION SELECT srvowner FROM pg_foreign_server
  UNION SELECT evtowner FROM pg_event_trigger
  UNION SELECT pubowner FROM pg_publication
  UNION SELECT defaclrole FROM pg_default_acl
  UNION SELECT unnest(polroles) FROM pg_policy
  UNION SELECT (aclexplode(acl)).grantee FROM acls WHERE acl IS NOT NULL
  UNION SELECT (aclexplode(acl)).grantor FROM acls WHERE acl IS NOT NULL
)
SELECT r.rolname::text, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
       r.rolinherit, r.rolreplication, r.rolbypassrls, r.rolconnlimit,
       CASE WHEN r.rolvaliduntil IS NULL THEN NULL
            WHEN r.rolvaliduntil = 'infinity' THEN 'infinity'
            ELSE to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'
       END,
       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
              WHERE m.member = r.oid ORDER BY 1),
       r.oid
  FROM pg_roles r
 WHERE r.oid IN (SELECT oid FROM needed)
   AND r.oid <> 10
   AND r.rolname !~ '^pg_'
 ORDER BY r.rolname COLLATE \"C\"";

/// The roles the connected database needs, sorted by name.
///
/// Runs outside a transaction block or inside one, but never leaves it aborted:
/// readability of `pg_authid` is checked before it is read.
pub fn roles_needed(client: &mut impl postgres::GenericClient) -> Result<Vec<RoleDef>> {
    let pg_err = |what: &'static str| {
        move |e: postgres::Error| Error::postgres(format!("{what}: {}", error_text(&e)))
    };
    let readable: bool = client
        .query_one(
            "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')",
            &[],
        )
        .map_err(pg_err("check access to pg_authid"))?
        .get(0);
    let rows = client
        .query(NEEDED_ROLE_OIDS, &[])
        .map_err(pg_err("list the roles the database needs"))?;
    let mut roles = Vec::with_capacity(rows.len());
    for row in rows {
        let oid: u32 = row.get(11);
        let password_hash = if readable {
            client
                .query_one("SELECT rolpassword FROM pg_authid WHERE oid = $1", &[&oid])
                .map_err(pg_err("read a password hash"))?
                .get::<_, Option<String>>(0)
        } else {
            None
        };
        roles.push(RoleDef {
            name: row.get(0),
            login: row.get(1),
            superuser: row.get(2),
            createdb: row.get(3),
            createrole: row.get(4),
            inherit: row.get(5),
            replication: row.get(6),
            bypassrls: row.get(7),
            connection_limit: row.get(8),
            valid_until: row.get(9),
            member_of: row.get(10),
            password_hash,
            password_readable: readable,
        });
    }
    Ok(roles)
}

/// Those of `names` that are not roles on the server `client` is connected to,
/// in the order given.
pub fn missing_roles(
    client: &mut impl postgres::GenericClient,
    names: &[String],
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
            &[&names],
        )
        .map_err(|e| Error::postgres(error_text(&e)))?;
    let existing: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(names
        .iter()
        .filter(|n| !existing.contains(n))
        .cloned()
        .collect())
}

/// Owners and grantees named by a custom dump (as engine-backup's extra-user
/// scan does, from the schema's SQL), without PUBLIC and the superuser.
pub fn roles_in_dump(tools: &PgTools, dump: DumpSource) -> Result<BTreeSet<String>> {
    let (finished, stdout) = dump.pg_restore(tools, &["-s", "-f", "-"])?;
    if !finished.success() {
        return Err(finished.failure("reading the dump's schema"));
    }
    Ok(roles_in_schema_sql(&String::from_utf8_lossy(&stdout)))
}

/// The roles named by `OWNER TO`, `GRANT … TO` and `REVOKE … FROM` lines.
pub(crate) fn roles_in_schema_sql(text: &str) -> BTreeSet<String> {
    let mut roles = BTreeSet::new();
    for line in text.lines() {
        let target = if line.starts_with("GRANT ") || line.starts_with("REVOKE ") {
            line.rsplit_once(" TO ")
                .or_else(|| line.rsplit_once(" FROM "))
                .map(|(_, r)| r)
        } else if line.starts_with("ALTER ") {
            line.rsplit_once(" OWNER TO ").map(|(_, r)| r)
        } else {
            None
        };
        let Some(target) = target else { continue };
        let target = target
            .trim_end_matches(';')
            .trim_end_matches(" WITH GRANT OPTION");
        for name in target.split(", ") {
            let name = name.trim().trim_matches('"').replace("\"\"", "\"");
            if !name.is_empty() && name != "PUBLIC" && name != "postgres" && name != "CURRENT_USER"
            {
                roles.insert(name);
            }
        }
    }
    roles
}

/// What identifies a server and one of its databases from any session:
/// the postmaster's start time and the database's OID.
fn server_identity_sql(database: &str) -> String {
    format!(
        "SELECT extract(epoch FROM pg_postmaster_start_time())::text || '/' || oid::text \
         FROM pg_database WHERE datname = {}",
        quote_literal(database)
    )
}

/// Whether the superuser session `admin` reaches the server (and database)
/// `client` is connected to: a superuser on another server would read
/// another server's passwords.
pub fn same_server(
    admin: &crate::pg::provision::Admin,
    client: &mut postgres::Client,
    database: &str,
) -> Result<bool> {
    let sql = server_identity_sql(database);
    let ours: String = client
        .query_one(&sql, &[])
        .map_err(|e| Error::postgres(error_text(&e)))?
        .get(0);
    let theirs = admin.query(&admin.params().database, &sql)?;
    Ok(theirs.first().and_then(|r| r.first()) == Some(&ours))
}

/// Fill in the password verifiers `roles` lack, read from `pg_authid` as
/// the superuser.
pub fn read_password_hashes(
    admin: &crate::pg::provision::Admin,
    roles: &mut [RoleDef],
) -> Result<()> {
    for role in roles.iter_mut().filter(|r| !r.password_readable) {
        role.password_hash = crate::pg::provision::password_hash(admin, &role.name)?;
        role.password_readable = true;
    }
    Ok(())
}

impl RoleDef {
    /// `CREATE ROLE "name" WITH <attributes> [PASSWORD '<hash>']`.
    ///
    /// Only a stored hash is ever written (a server stores the hash as given);
    /// a value that does not look like a SCRAM or md5 hash is left out, so the
    /// role is created without a password rather than with a readable one.
    /// Memberships are separate ([`RoleDef::membership_sql`]): the groups may
    /// not exist yet when the role is created.
    pub fn create_sql(&self) -> String {
        let flag = |on: bool, name: &str| {
            if on {
                name.to_string()
            } else {
                format!("NO{name}")
            }
        };
        let mut sql = format!(
            "CREATE ROLE {} WITH {} {} {} {} {} {} {} CONNECTION LIMIT {}",
            quote_ident(&self.name),
            flag(self.login, "LOGIN"),
            flag(self.superuser, "SUPERUSER"),
            flag(self.createdb, "CREATEDB"),
            flag(self.createrole, "CREATEROLE"),
            flag(self.inherit, "INHERIT"),
            flag(self.replication, "REPLICATION"),
            flag(self.bypassrls, "BYPASSRLS"),
            self.connection_limit
        );
        if let Some(until) = &self.valid_until {
            sql.push_str(&format!(" VALID UNTIL {}", quote_literal(until)));
        }
        if let Some(hash) = self
            .password_hash
            .as_deref()
            .filter(|h| is_password_hash(h))
        {
            sql.push_str(&format!(" PASSWORD {}", quote_literal(hash)));
        }
        sql
    }

    /// `GRANT "group" TO "name"` for each role this one is a member of.
    pub fn membership_sql(&self) -> Vec<String> {
        self.member_of
            .iter()
            .map(|group| {
                format!(
                    "GRANT {} TO {}",
                    quote_ident(group),
                    quote_ident(&self.name)
                )
            })
            .collect()
    }
}

/// Whether a stored password is a hash PostgreSQL accepts as already hashed:
/// `SCRAM-SHA-256$<iterations>:<salt>$<key>:<key>` or `md5` + 32 hex digits.
pub fn is_password_hash(value: &str) -> bool {
    if let Some(hex) = value.strip_prefix("md5") {
        return hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    value.strip_prefix("SCRAM-SHA-256$").is_some_and(|rest| {
        let parts: Vec<&str> = rest.split('$').collect();
        parts.len() == 2
            && parts[0].contains(':')
            && parts[1].contains(':')
            && !rest.contains(char::is_whitespace)
            && !rest.contains('\'')
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn roles_named_by_a_schema_dump() {
        let sql = "ALTER TABLE public.t OWNER TO engine;\n\
                   GRANT SELECT ON TABLE public.t TO \"read\"\"er\", postgres;\n\
                   REVOKE ALL ON SCHEMA public FROM PUBLIC;\n\
                   GRANT ALL ON TABLE public.t TO dwh WITH GRANT OPTION;\n\
                   CREATE TABLE public.t (x int);\n";
        let roles: Vec<String> = super::roles_in_schema_sql(sql).into_iter().collect();
        assert_eq!(roles, ["dwh", "engine", "read\"er"]);
    }
    use super::*;

    fn role() -> RoleDef {
        RoleDef {
            name: "re\"porter".into(),
            login: true,
            superuser: false,
            createdb: false,
            createrole: false,
            inherit: true,
            replication: false,
            bypassrls: false,
            connection_limit: -1,
            valid_until: Some("2030-01-01 00:00:00.000000+00".into()),
            member_of: vec!["readers".into()],
            password_hash: Some("SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy".into()),
            password_readable: true,
        }
    }

    #[test]
    fn creates_with_quoted_name_and_hash() {
        assert_eq!(
            role().create_sql(),
            "CREATE ROLE \"re\"\"porter\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT \
             NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1 VALID UNTIL '2030-01-01 00:00:00.000000+00' \
             PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy'"
        );
        assert_eq!(
            role().membership_sql(),
            vec!["GRANT \"readers\" TO \"re\"\"porter\"".to_string()]
        );
    }

    #[test]
    fn never_writes_something_that_is_not_a_hash() {
        let mut r = role();
        r.password_hash = Some("clear-text-password".into());
        assert!(!r.create_sql().contains("PASSWORD"));
        r.password_hash = Some("md5".to_string() + &"0".repeat(32));
        assert!(r
            .create_sql()
            .ends_with(&format!("PASSWORD 'md5{}'", "0".repeat(32))));
        r.password_hash = None;
        assert!(!r.create_sql().contains("PASSWORD"));
    }
}
