//! Retention: which snapshots (or archive files) a keep policy keeps, with
//! restic's semantics, evaluated by rustic_core's `KeepOptions`.
//!
//! restic's rules are independent: each `keep-*` rule walks the whole list,
//! newest first, and a snapshot kept by one rule still counts for the others.
//! `--keep-yearly 3` therefore means "the newest snapshot of each of the three
//! most recent years that have one", the current year included. borg and attic
//! apply their rules one after another, so the same flags keep more there.

use rustic_core::jiff::{Span, Zoned};
use rustic_core::repofile::SnapshotFile;
use rustic_core::{KeepOptions, StringList};

use crate::{Error, Result};

/// A keep policy, as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    /// restic's duration syntax: `2y5m7d3h` (m = months).
    pub within: Option<String>,
    /// Keep snapshots carrying every tag of one entry (`a,b` means a and b).
    pub tags: Vec<String>,
}

/// One item's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<T> {
    pub item: T,
    pub time: Zoned,
    pub keep: bool,
    /// Which rules keep it (`daily`, `yearly`, ...); empty when it goes.
    pub reasons: Vec<String>,
}

impl Retention {
    /// Whether any rule is given; with none, everything would go.
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }

    /// The policy as rustic_core's options; refuses an empty policy and bad values.
    pub fn keep_options(&self) -> Result<KeepOptions> {
        if self.is_empty() {
            return Err(Error::usage(
                "no keep rule given: pass at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within or --keep-tag",
            ));
        }
        let count = |flag: &str, v: Option<u32>| -> Result<Option<i32>> {
            v.map(|n| {
                i32::try_from(n)
                    .map_err(|_| Error::usage(format!("--keep-{flag} {n} is too large")))
            })
            .transpose()
        };
        let mut keep = KeepOptions::default()
            .keep_last(count("last", self.last)?)
            .keep_hourly(count("hourly", self.hourly)?)
            .keep_daily(count("daily", self.daily)?)
            .keep_weekly(count("weekly", self.weekly)?)
            .keep_monthly(count("monthly", self.monthly)?)
            .keep_yearly(count("yearly", self.yearly)?);
        if let Some(w) = &self.within {
            keep = keep.keep_within(parse_restic_duration(w)?);
        }
        let mut tags = Vec::new();
        for t in &self.tags {
            let list: StringList = t
                .parse()
                .map_err(|_| Error::usage(format!("--keep-tag '{t}' is not a tag list")))?;
            tags.push(list);
        }
        Ok(keep.keep_tags(tags))
    }

    /// Apply the policy to items with times (archive files, test fixtures):
    /// the verdicts come back newest first.
    pub fn apply<T: Clone>(&self, items: Vec<(T, Zoned)>, now: &Zoned) -> Result<Vec<Verdict<T>>> {
        let keep = self.keep_options()?;
        // KeepOptions works on snapshots: carry each item's index in the description.
        let snapshots: Vec<SnapshotFile> = items
            .iter()
            .enumerate()
            .map(|(i, (_, time))| SnapshotFile {
                time: time.clone(),
                description: Some(i.to_string()),
                ..Default::default()
            })
            .collect();
        let decided = keep
            .apply(snapshots, now)
            .map_err(|e| Error::usage(e.display_log()))?;
        let mut verdicts: Vec<Verdict<T>> = decided
            .into_iter()
            .map(|f| {
                let index: usize = f
                    .snapshot
                    .description
                    .as_deref()
                    .and_then(|d| d.parse().ok())
                    .expect("index set above");
                Verdict {
                    item: items[index].0.clone(),
                    time: f.snapshot.time,
                    keep: f.keep,
                    reasons: if f.keep { f.reasons } else { Vec::new() },
                }
            })
            .collect();
        label_oldest(&mut verdicts);
        Ok(verdicts)
    }
}

/// Whether two times fall in the same period (hour, day, week, ...).
type SamePeriod = fn(&Zoned, &Zoned) -> bool;

/// The counted rules whose period the oldest item can share with a newer one,
/// with the test of "same period" rustic_core applies.
const PERIOD_RULES: [(&str, SamePeriod); 5] = [
    ("hourly", |a, b| same_day(a, b) && a.hour() == b.hour()),
    ("daily", same_day),
    ("weekly", |a, b| {
        a.year() == b.year() && a.clone().iso_week_date().week() == b.clone().iso_week_date().week()
    }),
    ("monthly", |a, b| {
        a.year() == b.year() && a.month() == b.month()
    }),
    ("yearly", |a, b| a.year() == b.year()),
];

fn same_day(a: &Zoned, b: &Zoned) -> bool {
    a.year() == b.year() && a.day_of_year() == b.day_of_year()
}

/// Relabel, in one group's verdicts (newest first), the keeps of the oldest
/// item that only restic ≥ 0.17's rule makes: a rule keeps the oldest item
/// although the next newer one is of the same period, because the rule's
/// count was not used up. Such a reason becomes `oldest <rule>`, as restic
/// 0.17 prints it; a keep because the oldest item opens a period of its own
/// stays `<rule>`.
pub fn label_oldest<T>(verdicts: &mut [Verdict<T>]) {
    let [.., newer, oldest] = verdicts else {
        return;
    };
    if !oldest.keep {
        return;
    }
    for reason in &mut oldest.reasons {
        let shares_period = PERIOD_RULES
            .iter()
            .find(|(rule, _)| reason == rule)
            .is_some_and(|(_, same)| same(&oldest.time, &newer.time));
        if shares_period {
            *reason = format!("oldest {reason}");
        }
    }
}

/// restic's `--keep-within` syntax: numbers with units y, m (months), d, h,
/// e.g. `1y6m`, `7d`, `2y5m7d3h`.
pub fn parse_restic_duration(text: &str) -> Result<Span> {
    let bad = || {
        Error::usage(format!(
            "--keep-within '{text}' is not a duration; use numbers with y, m (months), d, h, e.g. 7d or 1y6m"
        ))
    };
    let mut span = Span::new();
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        number.clear();
        span = match c {
            'y' => span.try_years(n),
            'm' => span.try_months(n),
            'd' => span.try_days(n),
            'h' => span.try_hours(n),
            _ => return Err(bad()),
        }
        .map_err(|_| bad())?;
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(bad());
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustic_core::jiff::civil::date;
    use rustic_core::jiff::tz::TimeZone;

    fn at(y: i16, m: i8, d: i8) -> Zoned {
        date(y, m, d)
            .at(10, 0, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
    }

    #[test]
    fn durations_use_restic_units() {
        assert_eq!(
            parse_restic_duration("1y6m").unwrap().fieldwise(),
            Span::new().years(1).months(6).fieldwise()
        );
        assert_eq!(
            parse_restic_duration("2y5m7d3h").unwrap().fieldwise(),
            Span::new().years(2).months(5).days(7).hours(3).fieldwise()
        );
        for bad in ["", "7", "d", "7w", "1.5d", "-1d"] {
            assert!(parse_restic_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_policy_is_refused() {
        let err = Retention::default().keep_options().unwrap_err();
        assert!(err.to_string().contains("--keep-daily"), "{err}");
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let items = vec![
            ("a", at(2026, 1, 1)),
            ("b", at(2026, 1, 2)),
            (
                "c",
                at(2026, 1, 2).checked_add(Span::new().hours(5)).unwrap(),
            ),
            ("d", at(2026, 1, 3)),
        ];
        let policy = Retention {
            daily: Some(2),
            ..Default::default()
        };
        let verdicts = policy.apply(items, &at(2026, 2, 1)).unwrap();
        let kept: Vec<&str> = verdicts.iter().filter(|v| v.keep).map(|v| v.item).collect();
        assert_eq!(kept, ["d", "c"]);
        assert_eq!(verdicts.len(), 4);
    }
}
