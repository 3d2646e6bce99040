//! Timeline history files (`TTTTTTTT.history`): one line per ancestor,
//! `parentTLI<TAB>switchLSN<TAB>reason`, telling where each timeline branched.

use super::parse_lsn;
use crate::Result;

/// One ancestor of a timeline: the timeline `parent` was left at `switch_lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Branch {
    pub parent: u32,
    pub switch_lsn: u64,
}

/// The ancestors listed in a history file, oldest first.
pub fn parse(text: &str) -> Result<Vec<Branch>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(tli), Some(lsn)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(parent) = tli.parse::<u32>() else {
            continue;
        };
        out.push(Branch {
            parent,
            switch_lsn: parse_lsn(lsn)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_lines() {
        let b = super::parse("1\t0/30129E0\tbefore 2026-12-02 13:57:08.84912+00\n").unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].parent, 1);
        assert_eq!(b[0].switch_lsn, 0x30129E0);
    }
}

/// The timelines a timeline descends from, with the segment each began at:
/// which timeline's file holds segment `n` on the way to the newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// (timeline, first segment number), oldest first.
    begins: Vec<(u32, u64)>,
}

impl Lineage {
    /// The lineage of `timeline` from its history file's branches
    /// (empty for timeline 1), for segments of `segment_size` bytes.
    pub fn new(timeline: u32, branches: &[Branch], segment_size: u64) -> Lineage {
        let mut begins = Vec::new();
        let mut begin = 0;
        for b in branches {
            begins.push((b.parent, begin));
            // The next timeline (the child of this branch) begins in the
            // segment holding the switch point.
            begin = b.switch_lsn / segment_size.max(1);
        }
        begins.push((timeline, begin));
        Lineage { begins }
    }

    /// The timeline whose file recovery reads for segment number `n`.
    pub fn timeline_of(&self, n: u64) -> u32 {
        self.begins
            .iter()
            .rev()
            .find(|(_, begin)| *begin <= n)
            .map_or(self.begins[0].0, |(t, _)| *t)
    }

    /// Whether `timeline` is this lineage's or one of its ancestors.
    pub fn contains(&self, timeline: u32) -> bool {
        self.begins.iter().any(|(t, _)| *t == timeline)
    }
}

#[cfg(test)]
mod lineage_tests {
    use super::*;

    #[test]
    fn segments_follow_the_switch_points() {
        let branches = parse("1\t0/30129E0\tbefore x\n2\t0/5000000\tafter y\n").unwrap();
        let l = Lineage::new(3, &branches, 16 << 20);
        assert_eq!(l.timeline_of(2), 1);
        assert_eq!(l.timeline_of(3), 2);
        assert_eq!(l.timeline_of(4), 2);
        assert_eq!(l.timeline_of(5), 3);
        assert!(l.contains(2) && !l.contains(4));
    }
}
