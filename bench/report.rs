//! The benchmark's results: one row per measured case, printed as a plain-text
//! table and written as markdown (`BENCHMARKS.md`) with the machine and the
//! dataset it ran on.

use std::fmt::Write as _;

use crate::measure::Stats;

/// Which table a row belongs to, and so what its ratios are relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Ratios to the backup floor and to the reference backup pipeline.
    Backup,
    /// Ratios to bare `pg_restore -j 2` of uncompressed dumps and to the reference restore.
    Restore,
    /// The repository's nightly scenario: ratio to restic on the same night.
    Repository,
    /// Migration: ratio to the manual procedure.
    Migrate,
    /// Everything else (schema apply, profile figures): no ratios.
    Other,
}

impl Group {
    fn title(self) -> &'static str {
        match self {
            Group::Backup => "Backup",
            Group::Restore => "Restore",
            Group::Repository => "Repository: nightly snapshots",
            Group::Migrate => "Migrate to another server",
            Group::Other => "Other measurements",
        }
    }
}

/// One measured case.
#[derive(Debug, Clone)]
pub struct Row {
    pub group: Group,
    pub name: String,
    /// What ran, in shell notation (for the reader; it is not executed).
    pub command: String,
    pub stats: Option<Stats>,
    /// Why there are no (or fewer) samples: a failure or a time limit.
    pub problem: Option<String>,
    /// Bytes written (the archive or dump), where the case writes one.
    pub bytes: Option<u64>,
    /// Whether `peak_rss` was measured (in-process timings have none).
    pub memory_measured: bool,
    pub vs_floor: Option<f64>,
    pub vs_reference: Option<f64>,
}

impl Row {
    pub fn new(group: Group, name: &str, command: &str) -> Row {
        Row {
            group,
            name: name.to_string(),
            command: command.to_string(),
            stats: None,
            problem: None,
            bytes: None,
            memory_measured: true,
            vs_floor: None,
            vs_reference: None,
        }
    }

    fn cells(&self) -> [String; 8] {
        let secs = |d: std::time::Duration| d.as_secs_f64();
        let (median, spread, runs, peak) = match &self.stats {
            Some(s) => (
                format!("{:.2}", secs(s.median)),
                format!("{:.2}–{:.2}", secs(s.min), secs(s.max)),
                s.runs.to_string(),
                if self.memory_measured {
                    format!("{:.0}", s.peak_rss as f64 / 1048576.0)
                } else {
                    "–".into()
                },
            ),
            None => ("–".into(), "–".into(), "0".into(), "–".into()),
        };
        let median = match &self.problem {
            Some(p) if self.stats.is_none() => p.clone(),
            Some(p) => format!("{median} ({p})"),
            None => median,
        };
        let ratio = |r: Option<f64>| r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "–".into());
        [
            self.name.clone(),
            median,
            spread,
            runs,
            peak,
            self.bytes
                .map(|b| format!("{:.1}", b as f64 / 1e6))
                .unwrap_or_else(|| "–".into()),
            ratio(self.vs_floor),
            ratio(self.vs_reference),
        ]
    }
}

/// Everything the report says.
#[derive(Debug, Clone)]
pub struct Report {
    pub title: String,
    pub command: String,
    pub date: String,
    pub machine: Vec<String>,
    pub dataset: Vec<String>,
    pub rows: Vec<Row>,
    /// Findings and caveats, one paragraph each.
    pub notes: Vec<String>,
}

/// The report's sections, in order.
const GROUPS: [Group; 5] = [
    Group::Backup,
    Group::Restore,
    Group::Repository,
    Group::Migrate,
    Group::Other,
];

const HEADERS: [&str; 8] = [
    "case",
    "median s",
    "min–max s",
    "runs",
    "peak MiB",
    "size MB",
    "× floor",
    "× reference",
];

impl Report {
    /// The plain-text table for the console.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for group in GROUPS {
            let rows: Vec<[String; 8]> = self
                .rows
                .iter()
                .filter(|r| r.group == group)
                .map(Row::cells)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let mut widths = HEADERS.map(|h| h.chars().count());
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cells: &[String]| -> String {
                cells
                    .iter()
                    .zip(widths)
                    .enumerate()
                    .map(|(i, (c, w))| {
                        let pad = w.saturating_sub(c.chars().count());
                        if i == 0 {
                            format!("{c}{}", " ".repeat(pad))
                        } else {
                            format!("{}{c}", " ".repeat(pad))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            let _ = writeln!(out, "== {} ==", group.title());
            let _ = writeln!(out, "{}", line(&HEADERS.map(String::from)));
            for r in &rows {
                let _ = writeln!(out, "{}", line(r));
            }
            out.push('\n');
        }
        out
    }

    /// The whole report as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {}\n", self.title);
        let _ = writeln!(
            out,
            "Generated by `{}` on {}. Do not edit by hand: run the command again.\n",
            self.command, self.date
        );
        let _ = writeln!(out, "## Machine\n");
        for l in &self.machine {
            let _ = writeln!(out, "- {l}");
        }
        let _ = writeln!(out, "\n## Dataset\n");
        for l in &self.dataset {
            let _ = writeln!(out, "- {l}");
        }
        for group in GROUPS {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.group == group).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n## {}\n", group.title());
            match group {
                Group::Backup => {
                    let _ = writeln!(
                        out,
                        "× floor: median over the floor (the larger of the parallel `pg_dump -Fc -Z0 > /dev/null` of every database and the raw write of the same bytes). × reference: over engine-backup's defaults done by hand.\n"
                    );
                }
                Group::Restore => {
                    let _ = writeln!(
                        out,
                        "Every run restores into freshly created empty databases, after a `CHECKPOINT`. × floor: median over bare `pg_restore -j 2` of uncompressed custom dumps. × reference: over the reference pipeline's restore.\n"
                    );
                }
                Group::Repository => {
                    let _ = writeln!(
                        out,
                        "Three nights on one table (initial; 1 % of rows changed in runs of ids; 1 % changed at random ids), each tool storing the same dump files into its own repository (zstd 3, encrypted); size MB: what the repository grew by that night. × reference: over `restic backup` of the same night. The end-to-end row also takes the dumps.\n\nThe \"fresh repository\" rows: on the initial data, before the first night, each run (after one uncounted warm-up round) dumps every database, stores those dump files, and backs up end to end, each store into a new empty repository, so no run dedups against an earlier one; size MB: the dump files, or the repository after the run. × floor: median over the larger of the dump-only and store-only medians.\n"
                    );
                }
                Group::Migrate => {
                    let _ = writeln!(
                        out,
                        "Each run of each procedure onto a fresh server on this machine, the two procedures alternating (which one goes first alternates too). × reference: median over the manual procedure's median.\n"
                    );
                }
                Group::Other => {}
            }
            let _ = writeln!(out, "| {} | command |", HEADERS.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len() + 1));
            for r in rows {
                let cells = r.cells();
                let _ = writeln!(
                    out,
                    "| {} | `{}` |",
                    cells.join(" | "),
                    r.command.replace('|', "\\|")
                );
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report() -> Report {
        let mut ok = Row::new(Group::Backup, "holdfast backup", "holdfast backup --file F");
        ok.stats = Some(Stats {
            runs: 3,
            median: Duration::from_millis(1500),
            min: Duration::from_millis(1400),
            max: Duration::from_millis(1700),
            peak_rss: 64 << 20,
        });
        ok.bytes = Some(2_500_000);
        ok.vs_floor = Some(1.25);
        let mut stopped = Row::new(Group::Backup, "small size", "a | b");
        stopped.problem = Some("stopped after 300 s".into());
        Report {
            title: "Benchmarks".into(),
            command: "bench --quick".into(),
            date: "today".into(),
            machine: vec!["CPU: 2".into()],
            dataset: vec!["tiny".into()],
            rows: vec![ok, stopped],
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn markdown_has_the_figures_and_escapes_pipes() {
        let md = report().markdown();
        assert!(
            md.contains("| holdfast backup | 1.50 | 1.40–1.70 | 3 | 64 | 2.5 | 1.25× | – |"),
            "{md}"
        );
        assert!(md.contains("`a \\| b`"), "{md}");
        assert!(md.contains("stopped after 300 s"));
        assert!(md.contains("- a note"));
    }

    #[test]
    fn text_table_aligns_columns() {
        let text = report().text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("×") || l.contains("s  "))
            .collect();
        assert!(!lines.is_empty());
        assert!(text.contains("holdfast backup"));
        assert!(text.contains("1.25×"));
    }
}
