//! What a point-in-time restore aims at, and which base backup reaches it:
//! the newest that ended before the target. A target outside the recoverable
//! window (before the oldest base backup ended, after the newest archived WAL)
//! is refused with the window in the message.

use std::collections::BTreeMap;

use crate::repo::jiff::{Timestamp, Zoned};
use crate::repo::physical::BaseBackup;
use crate::repo::wal::StoredWal;
use crate::wal::{format_lsn, parse_lsn, Segment, WalName};
use crate::{Error, Result};

/// A recovery target (`recovery_target_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The end of the archive.
    Latest,
    Time(Timestamp),
    Lsn(u64),
    Xid(u64),
    Name(String),
}

impl Target {
    /// Parse a time as PostgreSQL prints it (`2026-12-07 05:25:19.123+00`) or RFC 3339.
    pub fn time(text: &str) -> Result<Target> {
        parse_time(text).map(Target::Time)
    }

    pub fn lsn(text: &str) -> Result<Target> {
        parse_lsn(text).map(Target::Lsn)
    }

    pub fn xid(text: &str) -> Result<Target> {
        text.trim()
            .parse()
            .map(Target::Xid)
            .map_err(|_| Error::usage(format!("'{text}' is not a transaction id")))
    }

    /// The `recovery_target_*` setting, if any.
    pub fn setting(&self) -> Option<(&'static str, String)> {
        match self {
            Target::Latest => None,
            Target::Time(t) => Some((
                "recovery_target_time",
                t.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
            )),
            Target::Lsn(l) => Some(("recovery_target_lsn", format_lsn(*l))),
            Target::Xid(x) => Some(("recovery_target_xid", x.to_string())),
            Target::Name(n) => Some(("recovery_target_name", n.clone())),
        }
    }
}

/// A time as PostgreSQL prints it, or RFC 3339.
pub fn parse_time(text: &str) -> Result<Timestamp> {
    let t = text.trim();
    // PostgreSQL writes `+00` and `+05:30`; jiff wants an offset with minutes.
    let normalised = match t.rfind(['+', '-']) {
        Some(i) if i > 10 && t[i + 1..].len() == 2 => format!("{t}:00"),
        _ => t.to_string(),
    };
    normalised.replacen(' ', "T", 1).parse().map_err(|_| {
        Error::usage(format!(
            "'{text}' is not a time with an offset, like '2026-12-07 05:25:19+00'"
        ))
    })
}

/// What can be recovered: from the end of the oldest base backup to the
/// newest archived WAL.
#[derive(Debug, Clone)]
pub struct Window {
    pub from: Zoned,
    pub to: Option<Zoned>,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |z: &Zoned| z.timestamp().strftime("%Y-%m-%d %H:%M:%S+00").to_string();
        match &self.to {
            Some(to) => write!(f, "{} to {}", show(&self.from), show(to)),
            None => write!(f, "{} (no WAL archived since)", show(&self.from)),
        }
    }
}

/// The recoverable window, if there is a base backup.
pub fn window(backups: &[BaseBackup], wal: &BTreeMap<WalName, StoredWal>) -> Option<Window> {
    let from = backups.iter().map(|b| b.end.clone()).min()?;
    let to = wal.values().map(|w| w.time.clone()).max();
    Some(Window { from, to })
}

/// The base backup to restore for `target`: the newest that ended before it.
pub fn choose<'a>(
    backups: &'a [BaseBackup],
    wal: &BTreeMap<WalName, StoredWal>,
    target: &Target,
) -> Result<&'a BaseBackup> {
    let Some(win) = window(backups, wal) else {
        return Err(Error::usage(
            "the repository holds no base backup; take one with 'holdfast repo backup --physical'",
        ));
    };
    let newest = || backups.iter().max_by(|a, b| a.end.cmp(&b.end));
    let outside = |what: String| {
        Error::usage(format!(
            "{what}; the recoverable window is {win}; nothing was written"
        ))
    };
    let chosen = match target {
        Target::Latest | Target::Xid(_) | Target::Name(_) => newest(),
        Target::Time(t) => {
            if let Some(to) = &win.to {
                if *t > to.timestamp() {
                    return Err(outside(format!(
                        "the target {} is after the newest archived WAL",
                        t.strftime("%Y-%m-%d %H:%M:%S+00")
                    )));
                }
            }
            backups
                .iter()
                .filter(|b| b.end.timestamp() <= *t)
                .max_by(|a, b| a.end.cmp(&b.end))
        }
        Target::Lsn(l) => {
            let newest_end = wal
                .keys()
                .filter_map(|n| match n {
                    WalName::Segment(s) => Some(*s),
                    _ => None,
                })
                .max_by_key(|s| (s.log, s.seg));
            if let (Some(s), Some(b)) = (newest_end, newest()) {
                let per_log = (1u64 << 32) / b.segment_size().max(1);
                let end = (s.number(per_log) + 1) * b.segment_size();
                if *l > end {
                    return Err(outside(format!(
                        "the target LSN {} is after the newest archived WAL (ends at {})",
                        format_lsn(*l),
                        format_lsn(end)
                    )));
                }
            }
            backups
                .iter()
                .filter(|b| b.stop_lsn <= *l)
                .max_by(|a, b| a.end.cmp(&b.end))
        }
    };
    chosen.ok_or_else(|| outside("the target is before the end of the oldest base backup".into()))
}

/// The segments recovery from `backup` needs before it is consistent
/// (start to stop) that the archive lacks.
pub fn missing_for_consistency(
    backup: &BaseBackup,
    wal: &BTreeMap<WalName, StoredWal>,
) -> Vec<String> {
    let size = backup.segment_size().max(1);
    let per_log = (1u64 << 32) / size;
    let start = backup.start_lsn / size;
    let stop = backup.stop_lsn.saturating_sub(1) / size;
    (start..=stop)
        .map(|n| Segment::from_number(backup.timeline, n, per_log))
        .filter(|s| !wal.contains_key(&WalName::Segment(*s)))
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_postgres_prints_them() {
        let a = parse_time("2026-12-07 05:25:19.5+00").unwrap();
        let b = parse_time("2026-12-07T06:25:19.5+01:00").unwrap();
        assert_eq!(a, b);
        assert!(parse_time("2026-12-07 05:25:19").is_err());
    }
}
