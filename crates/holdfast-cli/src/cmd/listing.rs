//! `--json` documents of the verbs whose output is a listing (repo
//! snapshots, repo forget, prune-archives): one JSON object on stdout with
//! a `version` field, instead of the text lines. The field names are the
//! text's, spelled out; `version` is raised only when a field changes
//! meaning or goes away.

use holdfast::repo::retention::Verdict;
use holdfast::repo::{PruneReport, SnapshotInfo};
use serde_json::{json, Value};

/// The format version of every listing document.
pub const VERSION: u32 = 1;

/// One snapshot.
pub fn snapshot(s: &SnapshotInfo) -> Value {
    json!({
        "id": s.id,
        "short_id": s.short_id(),
        "time": s.time.timestamp().to_string(),
        "host": s.hostname,
        "profile": s.tag("profile"),
        "tags": s.tags,
        "paths": s.paths,
        "source_bytes": s.source_bytes,
        "added_bytes": s.added_bytes,
        "added_stored_bytes": s.added_stored_bytes,
    })
}

/// What a keep policy decided, item by item (`item` describes each).
pub fn verdicts<T>(verdicts: &[Verdict<T>], item: impl Fn(&T) -> Value) -> Value {
    Value::Array(
        verdicts
            .iter()
            .map(|v| {
                json!({
                    "item": item(&v.item),
                    "time": v.time.timestamp().to_string(),
                    "keep": v.keep,
                    "reasons": v.reasons,
                })
            })
            .collect(),
    )
}

/// What a prune did (or would do).
pub fn prune(r: &PruneReport, dry_run: bool) -> Value {
    json!({
        "dry_run": dry_run,
        "used_bytes": r.used_bytes,
        "unused_bytes": r.unused_bytes,
        "packs_unreferenced": r.packs_unreferenced,
        "bytes_unreferenced": r.bytes_unreferenced,
        "packs_deleted": r.packs_deleted,
        "bytes_deleted": r.bytes_deleted,
        "packs_repacked": r.packs_repacked,
        "packs_written": r.packs_written,
        "bytes_written": r.bytes_written,
        "packs_marked": r.packs_marked,
        "packs_recovered": r.packs_recovered,
        "pack_bytes_before": r.pack_bytes_before,
        "pack_bytes_after": r.pack_bytes_after,
    })
}

/// Print `fields` as one document, with the format version.
pub fn print(mut fields: serde_json::Map<String, Value>) {
    fields.insert("version".into(), json!(VERSION));
    println!("{}", Value::Object(fields));
}
