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
