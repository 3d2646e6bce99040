//! The database objects the runner drops and recreates around an upgrade (views
//! and functions in `public`), the grants on them, and the drop of everything for
//! `schema drop`.

use postgres::Client;

use crate::pg::error_text;
use crate::{Error, Result};

/// One privilege a role had on a view or function, to give back after the rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `TABLE` (views) or `ROUTINE` (functions and procedures).
    pub kind: &'static str,
    /// Quoted name (`public."v"`) or signature (`f(integer)`).
    pub object: String,
    pub privilege: String,
    /// Quoted role name, or `PUBLIC`.
    pub grantee: String,
    pub grantable: bool,
}

impl Grant {
    fn statement(&self) -> String {
        format!(
            "GRANT {} ON {} {} TO {}{}",
            self.privilege,
            self.kind,
            self.object,
            self.grantee,
            if self.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        )
    }
}

/// Privileges granted on `public`'s views and functions to roles other than
/// their owners.
pub fn saved_grants(client: &mut Client) -> Result<Vec<Grant>> {
    let rows = client
        .query(
            "SELECT 'TABLE', quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                    a.privilege_type, \
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, \
                    a.is_grantable \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a \
             WHERE n.nspname = 'public' AND c.relkind = 'v' AND a.grantee <> c.relowner \
             UNION ALL \
             SELECT 'ROUTINE', p.oid::regprocedure::text, a.privilege_type, \
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, \
                    a.is_grantable \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, aclexplode(p.proacl) a \
             WHERE n.nspname = 'public' AND p.prokind IN ('f', 'w', 'p') AND a.grantee <> p.proowner \
             ORDER BY 1, 2, 4, 3",
            &[],
        )
        .map_err(|e| sql_error("read the grants on views and functions", &e))?;
    Ok(rows
        .iter()
        .map(|r| Grant {
            kind: if r.get::<_, String>(0) == "TABLE" {
                "TABLE"
            } else {
                "ROUTINE"
            },
            object: r.get(1),
            privilege: r.get(2),
            grantee: r.get(3),
            grantable: r.get(4),
        })
        .collect())
}

/// Give back the saved grants on the objects that exist again. A function whose
/// saved privileges did not include `PUBLIC` has the default `EXECUTE` for
/// `PUBLIC`, which a recreated function gets, revoked again. Returns the objects
/// that are gone (their grants are dropped with them).
pub fn reapply_grants(client: &mut Client, grants: &[Grant]) -> Result<Vec<String>> {
    let mut gone: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for grant in grants {
        if gone.contains(&grant.object) {
            continue;
        }
        if !seen.contains(&grant.object.as_str()) {
            seen.push(&grant.object);
            let probe = if grant.kind == "TABLE" {
                "SELECT to_regclass($1) IS NOT NULL"
            } else {
                "SELECT to_regprocedure($1) IS NOT NULL"
            };
            let exists: bool = client
                .query_one(probe, &[&grant.object])
                .map_err(|e| sql_error("look up a view or function", &e))?
                .get(0);
            if !exists {
                gone.push(grant.object.clone());
                continue;
            }
            let public_kept = grants
                .iter()
                .any(|g| g.object == grant.object && g.grantee == "PUBLIC");
            if !public_kept {
                let revoke = format!("REVOKE ALL ON {} {} FROM PUBLIC", grant.kind, grant.object);
                client
                    .batch_execute(&revoke)
                    .map_err(|e| sql_error(&format!("run '{revoke}'"), &e))?;
            }
        }
        client.batch_execute(&grant.statement()).map_err(|e| {
            Error::postgres(format!(
                "cannot restore the grant '{}': {}",
                grant.statement(),
                error_text(&e)
            ))
        })?;
    }
    Ok(gone)
}

/// Drop the views in `public` (CASCADE, as oVirt does: functions returning a
/// view's row type go with it), then the functions and procedures nothing but
/// code depends on. Extension objects stay.
///
/// Functions a trigger, a column default, an index or a constraint uses are kept:
/// the procedure files replace them with `CREATE OR REPLACE`. As a safety net the
/// drop fails if it took anything besides views, functions and their rules: a
/// table, index, trigger, constraint, default, policy or materialized view.
pub fn drop_views_and_functions(client: &mut Client, views: bool, functions: bool) -> Result<()> {
    let before = bystanders(client)?;
    if views {
        let names = names(
            client,
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind = 'v' \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                               AND d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY 1",
        )?;
        drop_list(client, "VIEW", &names)?;
    }
    if functions {
        let names = names(
            client,
            "SELECT p.oid::regprocedure::text FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = 'public' AND p.prokind IN ('f', 'w', 'p') \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                               AND d.objid = p.oid AND d.deptype = 'e') \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_proc'::regclass \
                               AND d.refobjid = p.oid AND d.deptype IN ('n', 'a') \
                               AND d.classid <> 'pg_proc'::regclass) \
             ORDER BY 1",
        )?;
        drop_list(client, "ROUTINE", &names)?;
    }
    let after = bystanders(client)?;
    let lost: Vec<&String> = before.iter().filter(|d| !after.contains(*d)).collect();
    if let Some(first) = lost.first() {
        return Err(Error::failed(format!(
            "dropping the views and functions before the upgrade would also drop {first}{}; \
             make it independent of the views, or define it in the view or procedure files",
            if lost.len() > 1 {
                format!(" and {} other objects", lost.len() - 1)
            } else {
                String::new()
            }
        )));
    }
    Ok(())
}

/// Descriptions of the objects a drop of views and functions must not take.
fn bystanders(client: &mut Client) -> Result<std::collections::BTreeSet<String>> {
    let user_ns = "(SELECT oid FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' \
                    AND nspname <> 'information_schema')";
    let query = format!(
        "SELECT pg_describe_object('pg_class'::regclass, oid, 0) FROM pg_class \
           WHERE relkind NOT IN ('v', 'c') AND relnamespace IN {user_ns} \
         UNION ALL SELECT pg_describe_object('pg_trigger'::regclass, t.oid, 0) FROM pg_trigger t \
           JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relkind <> 'v' AND NOT t.tgisinternal \
           AND c.relnamespace IN {user_ns} \
         UNION ALL SELECT pg_describe_object('pg_constraint'::regclass, oid, 0) FROM pg_constraint \
           WHERE connamespace IN {user_ns} \
         UNION ALL SELECT pg_describe_object('pg_attrdef'::regclass, a.oid, 0) FROM pg_attrdef a \
           JOIN pg_class c ON c.oid = a.adrelid WHERE c.relnamespace IN {user_ns} \
         UNION ALL SELECT pg_describe_object('pg_policy'::regclass, p.oid, 0) FROM pg_policy p \
           JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace IN {user_ns} \
         UNION ALL SELECT pg_describe_object('pg_rewrite'::regclass, r.oid, 0) FROM pg_rewrite r \
           JOIN pg_class c ON c.oid = r.ev_class WHERE c.relkind NOT IN ('v', 'm') \
           AND c.relnamespace IN {user_ns}"
    );
    Ok(names(client, &query)?.into_iter().collect())
}

/// Drop everything the application has in `public`: views, materialized views,
/// tables, sequences, functions and types, but not extensions or their members;
/// and holdfast's bookkeeping schema.
pub fn drop_all(client: &mut Client) -> Result<()> {
    let not_extension = |class: &str, oid: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{class}'::regclass \
             AND d.objid = {oid} AND d.deptype = 'e')"
        )
    };
    let relations = |kinds: &str| {
        format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ({kinds}) AND {} ORDER BY 1",
            not_extension("pg_class", "c.oid")
        )
    };
    let steps: Vec<(&str, String)> = vec![
        ("VIEW", relations("'v'")),
        ("MATERIALIZED VIEW", relations("'m'")),
        ("TABLE", relations("'r', 'p', 'f'")),
        ("SEQUENCE", relations("'S'")),
        (
            "ROUTINE",
            format!(
                "SELECT p.oid::regprocedure::text FROM pg_proc p \
                 JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname = 'public' AND p.prokind IN ('f', 'w', 'p') AND {} ORDER BY 1",
                not_extension("pg_proc", "p.oid")
            ),
        ),
        (
            "TYPE",
            format!(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname) FROM pg_type t \
                 JOIN pg_namespace n ON n.oid = t.typnamespace \
                 WHERE n.nspname = 'public' AND t.typtype IN ('c', 'e', 'd', 'r') \
                   AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') \
                   AND {} ORDER BY 1",
                not_extension("pg_type", "t.oid")
            ),
        ),
    ];
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            super::history::STATE_SCHEMA
        ))
        .map_err(|e| sql_error("drop holdfast's bookkeeping schema", &e))?;
    for (kind, query) in steps {
        let list = names(client, &query)?;
        if !list.is_empty() {
            let sql = format!("DROP {kind} IF EXISTS {} CASCADE", list.join(", "));
            client
                .batch_execute(&sql)
                .map_err(|e| sql_error(&format!("drop the {} objects", kind.to_lowercase()), &e))?;
        }
    }
    Ok(())
}

/// Whether `public` holds any table (other than the history), view or function
/// of the application.
pub fn public_is_empty(client: &mut Client) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') \
                       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                       AND d.objid = c.oid AND d.deptype = 'e'))",
            &[],
        )
        .map_err(|e| sql_error("inspect the database", &e))?;
    Ok(row.get(0))
}

fn names(client: &mut Client, query: &str) -> Result<Vec<String>> {
    Ok(client
        .query(query, &[])
        .map_err(|e| sql_error("list the database's objects", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

fn drop_list(client: &mut Client, kind: &str, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let sql = format!("DROP {kind} {} CASCADE", names.join(", "));
    client.batch_execute(&sql).map_err(|e| {
        Error::postgres(format!(
            "cannot drop the {}s before the upgrade: {}",
            kind.to_lowercase(),
            error_text(&e)
        ))
    })?;
    Ok(())
}

fn sql_error(what: &str, e: &postgres::Error) -> Error {
    Error::postgres(format!("cannot {what}: {}", error_text(e)))
}
