//! Inspection against the engine-backup 4.5 fixture environment built on a real
//! cluster: checksums, sequences and the large object equal the README's, the
//! roles the database needs, the emptiness check, the inventory.

mod pg_support;

use holdfast::pg::{
    self, database_info, database_is_empty, large_objects, object_inventory, roles_needed,
    sequences, table_checksums,
};
use pg_support::*;
use pgsandbox::Cluster;

#[test]
fn fixture_environment_inspected() {
    let cluster = Cluster::start().expect("start cluster");
    load_environment(&cluster);

    // Engine database, read as its owner over TCP with a scram password.
    let mut engine_db = pg::connect(&engine(&cluster, "engine")).unwrap();
    assert_eq!(
        table_checksums(&mut engine_db).unwrap(),
        expected_checksums("engine")
    );
    assert_eq!(
        sequences(&mut engine_db).unwrap(),
        expected_engine_sequences()
    );
    assert_eq!(
        large_objects(&mut engine_db).unwrap(),
        expected_large_objects()
    );

    let mut dwh_db = pg::connect(&dwh(&cluster, "ovirt_engine_history")).unwrap();
    assert_eq!(
        table_checksums(&mut dwh_db).unwrap(),
        expected_checksums("ovirt_engine_history")
    );
    assert_eq!(sequences(&mut dwh_db).unwrap(), expected_dwh_sequences());
    assert!(large_objects(&mut dwh_db).unwrap().is_empty());

    // Database facts.
    let info = database_info(&mut engine_db).unwrap();
    assert_eq!(info.name, "engine");
    assert_eq!(info.owner, "engine");
    assert_eq!(info.encoding, "UTF8");
    assert_eq!(info.server_version_num / 10000, cluster.major() as i32);
    assert!(info.extensions.iter().any(|(name, _)| name == "plpgsql"));

    // Roles: as the owner, pg_authid is not readable; as the superuser it is.
    let roles = roles_needed(&mut engine_db).unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["engine", "reporter"]);
    assert!(roles
        .iter()
        .all(|r| !r.password_readable && r.password_hash.is_none()));
    assert!(roles.iter().all(|r| r.login && !r.superuser));
    let dwh_roles = roles_needed(&mut dwh_db).unwrap();
    let names: Vec<&str> = dwh_roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ovirt_engine_history", "reporter"]);

    let mut as_superuser = cluster.connect("engine").unwrap();
    let roles = roles_needed(&mut as_superuser).unwrap();
    assert_eq!(roles.len(), 2);
    for role in &roles {
        assert!(role.password_readable);
        let hash = role.password_hash.as_deref().expect("hash readable");
        assert!(hash.starts_with("SCRAM-SHA-256$"), "{hash}");
        assert!(role.create_sql().contains(hash));
    }

    // create_sql makes a role that logs in with the original password.
    let other = Cluster::start().expect("start second cluster");
    for role in &roles {
        other.execute("postgres", &role.create_sql()).unwrap();
    }
    other.create_database("engine", "engine").unwrap();
    pg::connect(&engine(&other, "engine")).expect("engine logs in with the copied hash");
    pg::connect(&tcp(&other, "reporter", REPORTER_PW, "engine"))
        .expect("reporter logs in with the copied hash");

    // Emptiness: a fresh database is empty, the fixture's is not.
    assert_eq!(
        database_is_empty(&mut engine_db).unwrap().as_deref(),
        Some("schema audit")
    );
    let mut fresh = pg::connect(&engine(&other, "engine")).unwrap();
    assert_eq!(database_is_empty(&mut fresh).unwrap(), None);
    fresh
        .batch_execute("CREATE TABLE public.t (x int)")
        .unwrap();
    assert_eq!(
        database_is_empty(&mut fresh).unwrap().as_deref(),
        Some("table public.t")
    );
    fresh
        .batch_execute("DROP TABLE public.t; SELECT lo_create(4242)")
        .unwrap();
    assert_eq!(
        database_is_empty(&mut fresh).unwrap().as_deref(),
        Some("large object 4242")
    );

    // Inventory: the README's objects and grants.
    let inv = object_inventory(&mut engine_db).unwrap();
    assert_eq!(inv.schemas, ["audit", "public"]);
    assert_eq!(inv.views, ["public.active_hosts_v"]);
    assert_eq!(inv.matviews, ["public.host_event_stats_mv"]);
    assert_eq!(inv.tables.len(), 16, "{:?}", inv.tables);
    assert!(
        inv.functions
            .contains(&"public.host_event_count(p_host_id bigint) f".to_string()),
        "{:?}",
        inv.functions
    );
    assert_eq!(inv.triggers.len(), 2);
    assert!(inv.types.contains(&"public.host_status e".to_string()));
    for grant in [
        "relation public.hosts: reporter=r/engine",
        "relation public.active_hosts_v: reporter=r/engine",
        "schema audit: reporter=U/engine",
        "relation audit.host_changes: reporter=r/engine",
        "relation public.ticket_number_seq: reporter=U/engine",
        "large object 70001: reporter=r/engine",
    ] {
        assert!(
            inv.grants.contains(&grant.to_string()),
            "{grant}: {:?}",
            inv.grants
        );
    }
    assert!(inv
        .grants
        .iter()
        .any(|g| g.starts_with("function public.host_event_count")
            && g.ends_with("reporter=X/engine")));
    // PostgreSQL 15 made pg_database_owner the owner of a new database's public schema.
    assert!(
        inv.owners
            .iter()
            .filter(|o| *o != "schema public: pg_database_owner")
            .all(|o| o.ends_with(": engine")),
        "{:?}",
        inv.owners
    );
    // Two tables, two columns, a view, a schema, a function, the large object.
    assert_eq!(inv.comments, 8);
    let dwh_inv = object_inventory(&mut dwh_db).unwrap();
    assert!(dwh_inv.grants.contains(
        &"column public.host_configuration.host_name: reporter=r/ovirt_engine_history".to_string()
    ));
}
