//! `--json`: one JSON document on stdout when a run ends (the document the
//! `--notify` webhooks receive), the console's lines on stderr; the same on
//! success, on a deep verify and on a refused run.

mod support;

use serde_json::Value;
use support::*;

/// The run's stdout, which must be one JSON document and nothing else.
fn document(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        )
    })
}

#[test]
fn backup_verify_and_a_refusal_end_with_one_json_document() {
    let s = Sample::start();
    let backup = s.holdfast(&["backup", "--file", "b.backup", "--json"]);
    backup.ok();
    let doc = document(&backup);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["verb"], "backup");
    assert_eq!(doc["outcome"], "success");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["profile"], "ovirt-engine");
    let size = std::fs::metadata(s.path("b.backup")).unwrap().len();
    assert_eq!(doc["size_bytes"], size);
    assert_eq!(doc["scopes"], serde_json::json!(["files", "db", "dwhdb"]));
    assert!(doc["archive"].as_str().unwrap().ends_with("/b.backup"));
    assert!(doc["duration_seconds"].as_f64().unwrap() > 0.0);
    // The human lines went to stderr.
    assert!(backup.stderr.contains("Backing up:"), "{}", backup.stderr);

    let verify = s.holdfast(&["verify", "--deep", "b.backup", "--json"]);
    verify.ok();
    let doc = document(&verify);
    assert_eq!(doc["verb"], "verify --deep");
    assert_eq!(doc["outcome"], "success");
    let manifest = holdfast::archive::peek_manifest(&s.path("b.backup")).unwrap();
    let tables: usize = manifest.databases.iter().map(|d| d.tables.len()).sum();
    assert!(tables > 0);
    assert_eq!(doc["tables_compared"], tables);
    let report = doc["tables"].as_array().unwrap();
    assert_eq!(report.len(), tables, "{doc}");
    assert!(report.iter().all(|t| t["verdict"] == "same"), "{doc}");
    assert!(
        report
            .iter()
            .any(|t| t["table"] == "public.hosts" && t["rows_restored"] == 40),
        "{doc}"
    );

    // A refused run: the document says why, and the exit status agrees.
    let again = s.holdfast(&["backup", "--file", "b.backup", "--json"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    let doc = document(&again);
    assert_eq!(doc["outcome"], "usage error");
    assert_eq!(doc["exit_code"], 2);
    assert!(
        doc["reason"]
            .as_str()
            .unwrap()
            .contains("exists; choose another --file or pass --overwrite"),
        "{doc}"
    );
    assert!(doc.get("size_bytes").is_none_or(Value::is_null), "{doc}");
}
