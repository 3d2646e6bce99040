//! The names PostgreSQL gives the files it archives: WAL segments
//! (`TTTTTTTTXXXXXXXXYYYYYYYY`), timeline history files (`TTTTTTTT.history`),
//! backup history files (`<segment>.<offset>.backup`) and the `.partial`
//! segment a promotion leaves behind.

use std::fmt;

use crate::{Error, Result};

/// Segments per "log" number with the default 16 MiB segment size.
pub const SEGMENTS_PER_LOG_16MB: u64 = 0x100;

/// One archived file's name, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WalName {
    /// A WAL segment: timeline and segment number (log * segments-per-log + seg).
    Segment(Segment),
    /// `TTTTTTTT.history`.
    History(u32),
    /// `<segment>.<offset>.backup`.
    Backup(Segment, u32),
    /// `<segment>.partial`.
    Partial(Segment),
}

/// A segment: timeline and the two 32-bit halves of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment {
    pub timeline: u32,
    pub log: u32,
    pub seg: u32,
}

impl Segment {
    /// The segment number for `segments_per_log` segments per log (0x100 for 16 MiB).
    pub fn number(&self, segments_per_log: u64) -> u64 {
        u64::from(self.log) * segments_per_log + u64::from(self.seg)
    }

    /// The segment on `timeline` with number `n`.
    pub fn from_number(timeline: u32, n: u64, segments_per_log: u64) -> Segment {
        Segment {
            timeline,
            log: (n / segments_per_log) as u32,
            seg: (n % segments_per_log) as u32,
        }
    }

    /// The segment holding `lsn`.
    pub fn of_lsn(timeline: u32, lsn: u64, segment_size: u64) -> Segment {
        Segment::from_number(timeline, lsn / segment_size, (1u64 << 32) / segment_size)
    }

    fn parse(text: &str) -> Option<Segment> {
        if text.len() != 24 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let part = |i: usize| u32::from_str_radix(&text[i..i + 8], 16).ok();
        Some(Segment {
            timeline: part(0)?,
            log: part(8)?,
            seg: part(16)?,
        })
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg)
    }
}

impl WalName {
    /// Parse a file name as PostgreSQL passes it in `%f` (or the last part of `%p`).
    pub fn parse(name: &str) -> Result<WalName> {
        let bad = || {
            Error::usage(format!(
                "'{name}' is not a WAL file name (a segment like 000000010000000000000003, \
                 a TTTTTTTT.history, a <segment>.<offset>.backup or a <segment>.partial)"
            ))
        };
        if let Some(tli) = name.strip_suffix(".history") {
            if tli.len() == 8 && tli.bytes().all(|b| b.is_ascii_hexdigit()) {
                return u32::from_str_radix(tli, 16)
                    .map(WalName::History)
                    .map_err(|_| bad());
            }
            return Err(bad());
        }
        if let Some(rest) = name.strip_suffix(".partial") {
            return Segment::parse(rest).map(WalName::Partial).ok_or_else(bad);
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (seg, offset) = rest.split_once('.').ok_or_else(bad)?;
            let segment = Segment::parse(seg).ok_or_else(bad)?;
            if offset.len() != 8 {
                return Err(bad());
            }
            let offset = u32::from_str_radix(offset, 16).map_err(|_| bad())?;
            return Ok(WalName::Backup(segment, offset));
        }
        Segment::parse(name).map(WalName::Segment).ok_or_else(bad)
    }

    /// The segment this name is, or belongs to.
    pub fn segment(&self) -> Option<Segment> {
        match self {
            WalName::Segment(s) | WalName::Backup(s, _) | WalName::Partial(s) => Some(*s),
            WalName::History(_) => None,
        }
    }

    /// Whether PostgreSQL may ask for this name without it ever having been
    /// archived: it probes for `.history` files of timelines that do not exist.
    pub fn is_probe(&self) -> bool {
        matches!(self, WalName::History(_))
    }
}

impl fmt::Display for WalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalName::Segment(s) => write!(f, "{s}"),
            WalName::History(t) => write!(f, "{t:08X}.history"),
            WalName::Backup(s, o) => write!(f, "{s}.{o:08X}.backup"),
            WalName::Partial(s) => write!(f, "{s}.partial"),
        }
    }
}

/// An LSN as PostgreSQL writes it (`16/B374D848`).
pub fn parse_lsn(text: &str) -> Result<u64> {
    let bad = || Error::usage(format!("'{text}' is not an LSN (like 0/3000060)"));
    let (hi, lo) = text.trim().split_once('/').ok_or_else(bad)?;
    let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
    if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
        return Err(bad());
    }
    Ok((hi << 32) | lo)
}

/// An LSN in PostgreSQL's notation.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [
            "000000010000000000000003",
            "00000002.history",
            "000000010000000000000002.00000028.backup",
            "000000010000000A000000FF.partial",
        ] {
            assert_eq!(WalName::parse(n).unwrap().to_string(), n);
        }
        assert!(WalName::parse("00000001000000000000003").is_err());
        assert!(WalName::parse("../etc/passwd").is_err());
        assert!(WalName::parse("0000000G.history").is_err());
    }

    #[test]
    fn lsns_and_segments() {
        assert_eq!(parse_lsn("0/3000060").unwrap(), 0x3000060);
        assert_eq!(format_lsn(0x1_0300_0060), "1/3000060");
        let s = Segment::of_lsn(1, 0x1_0300_0060, 16 << 20);
        assert_eq!(s.to_string(), "000000010000000100000003");
        assert_eq!(
            Segment::from_number(1, s.number(0x100) + 1, 0x100).to_string(),
            "000000010000000100000004"
        );
    }
}
