//! One runner at a time per database: a second one waits, naming the holder, or
//! gives up after its timeout.

mod schema_support;

use std::time::{Duration, Instant};

use holdfast::schema::{self, ApplyOptions};
use schema_support::*;

#[test]
fn concurrent_runners_apply_each_script_once() {
    let db = database();
    let dir = small_tree();
    put_script(
        dir.path(),
        "04_02_0060_slow.sql",
        "select pg_sleep(1.5);\ninsert into upgrade_log (version) values ('04020060');\n",
    );
    let (params, path) = (db.params.clone(), dir.path().to_path_buf());
    let runners: Vec<_> = (0..2)
        .map(|i| {
            let (params, path) = (params.clone(), path.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300 * i));
                let mut said = Said::default();
                let report =
                    schema::apply(&params, &path, &ApplyOptions::default(), &mut said.sink());
                (report, said.0)
            })
        })
        .collect();
    let results: Vec<_> = runners.into_iter().map(|r| r.join().unwrap()).collect();
    let (first, second) = (&results[0], &results[1]);
    assert_eq!(first.0.as_ref().unwrap().outcome.installed.len(), 11);
    let second_report = second.0.as_ref().unwrap();
    assert!(second_report.outcome.installed.is_empty());
    let waited = second
        .1
        .iter()
        .find(|l| l.starts_with("Waiting for another schema runner"))
        .expect("a wait message");
    assert!(waited.contains("held by pid "), "{waited}");
    assert!(waited.contains("user engine"), "{waited}");
    assert_eq!(db.count("SELECT count(*) FROM upgrade_log"), 11);
    assert_eq!(db.count("SELECT count(*) FROM schema_version"), 12);
}

#[test]
fn a_waiting_runner_gives_up_after_its_timeout() {
    let db = database();
    let dir = small_tree();
    let mut holder = db.cluster.connect("engine").unwrap();
    let pid: i32 = holder
        .query_one(
            "SELECT pg_advisory_lock(1215261796, hashtext(current_database())), pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(1);
    let started = Instant::now();
    let options = ApplyOptions {
        lock_timeout: Duration::from_secs(1),
        ..ApplyOptions::default()
    };
    let err = schema::apply(
        &db.params,
        dir.path(),
        &options,
        &mut Said::default().sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        err.starts_with(&format!(
            "another schema runner is working on database 'engine' (held by pid {pid}, user postgres"
        )),
        "{err}"
    );
    assert!(
        err.ends_with("gave up after 1 s: wait for it to finish or raise --lock-timeout"),
        "{err}"
    );
    assert_eq!(
        db.q("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
    drop(holder);
    schema::apply(
        &db.params,
        dir.path(),
        &options,
        &mut Said::default().sink(),
    )
    .unwrap();
}
