//! The archive's hash file: `sha256sum` (`<hex>  <relpath>` lines, as
//! sha256sum(1) writes them), and the legacy `md5sum` of archives made before
//! 2019, which is only verified.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// Which hash a hash file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    Sha256,
    Md5,
}

impl HashKind {
    /// The hash file's member name.
    pub fn file_name(self) -> &'static str {
        match self {
            HashKind::Sha256 => "sha256sum",
            HashKind::Md5 => "md5sum",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            HashKind::Sha256 => 64,
            HashKind::Md5 => 32,
        }
    }

    /// Hex digest of everything `reader` yields.
    pub fn digest_reader(self, reader: impl Read) -> io::Result<String> {
        match self {
            HashKind::Sha256 => digest_with::<Sha256>(reader),
            HashKind::Md5 => digest_with::<Md5>(reader),
        }
    }

    /// Hex digest of the file at `path`.
    pub fn digest_file(self, path: &Path) -> Result<String> {
        let file = File::open(path).context(|| format!("open {}", path.display()))?;
        self.digest_reader(file)
            .context(|| format!("read {}", path.display()))
    }
}

fn digest_with<D: Digest>(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = D::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// One line of a hash file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashLine {
    /// Lower-case hex digest.
    pub digest: String,
    /// Member path relative to the archive root, e.g. `db/engine_backup.db`.
    pub path: String,
}

/// The hash file text: `<hex>  <path>` per line, in the order given.
pub fn render(lines: &[HashLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{}  {}\n", l.digest, l.path))
        .collect()
}

/// Parse a hash file. Accepts the text and binary (`*path`) forms of
/// sha256sum(1)/md5sum(1); `origin` names the file in errors.
pub fn parse(text: &str, kind: HashKind, origin: &str) -> Result<Vec<HashLine>> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let fail = || {
            Error::invalid(format!(
                "{origin}: line {} is not '<{}-hex-digits>  <member>'",
                n + 1,
                kind.hex_len()
            ))
        };
        let (digest, rest) = line.split_at_checked(kind.hex_len()).ok_or_else(fail)?;
        if !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail());
        }
        let path = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            // A control character (a stray CR of a CRLF file) can be in no
            // member name, and would not survive writing the list back.
            .filter(|p| !p.is_empty() && !p.contains(char::is_control))
            .ok_or_else(fail)?;
        lines.push(HashLine {
            digest: digest.to_ascii_lowercase(),
            path: path.to_string(),
        });
    }
    Ok(lines)
}

/// Check every line of a hash file against the files under `root`. A missing
/// or different file is an Invalid error naming the member.
/// SHA-256 digests already taken of files, by path: an archive's members
/// are hashed as they are unpacked, so the checks against `sha256sum` and
/// the manifest need not read them again.
#[derive(Debug, Default, Clone)]
pub struct KnownDigests(BTreeMap<PathBuf, String>);

impl KnownDigests {
    pub fn insert(&mut self, path: PathBuf, sha256: String) {
        self.0.insert(path, sha256);
    }

    /// The file's digest of `kind`: the one taken already, or read now.
    pub fn digest(&self, kind: HashKind, path: &Path) -> Result<String> {
        match (kind, self.0.get(path)) {
            (HashKind::Sha256, Some(known)) => Ok(known.clone()),
            _ => kind.digest_file(path),
        }
    }
}

/// A writer that hashes (SHA-256) what passes through to `inner`.
pub struct Sha256Writer<W> {
    pub inner: W,
    hasher: Sha256,
}

impl<W: io::Write> Sha256Writer<W> {
    pub fn new(inner: W) -> Sha256Writer<W> {
        Sha256Writer {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The hex digest of everything written.
    pub fn hex_digest(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

impl<W: io::Write> io::Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub fn verify(root: &Path, lines: &[HashLine], kind: HashKind, known: &KnownDigests) -> Result<()> {
    for line in lines {
        let relative = Path::new(&line.path);
        let safe = relative.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !safe {
            return Err(Error::invalid(format!(
                "Checksum verification failed: {} names {:?}, which is outside the archive",
                kind.file_name(),
                line.path
            )));
        }
        let path = root.join(relative);
        if !path.is_file() {
            return Err(Error::invalid(format!(
                "Checksum verification failed: member '{}' listed in {} is missing from the archive",
                line.path,
                kind.file_name()
            )));
        }
        let actual = known.digest(kind, &path)?;
        if actual != line.digest {
            return Err(Error::invalid(format!(
                "Checksum verification failed: member '{}' has {} {actual}, {} says {}",
                line.path,
                kind.file_name().trim_end_matches("sum"),
                kind.file_name(),
                line.digest
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_parse_round_trip() {
        let lines = vec![
            HashLine {
                digest: "5186e88612feecac695acd0f27bd3b758213febb46a6fa4a105164a68d07c3c8".into(),
                path: "version".into(),
            },
            HashLine {
                digest: "09ad73071f60e2490d9d48bde91292d5b9c95ab0ad565b368cfa29b692e1bbc1".into(),
                path: "db/engine_backup.db".into(),
            },
        ];
        let text = render(&lines);
        assert!(text.starts_with(
            "5186e88612feecac695acd0f27bd3b758213febb46a6fa4a105164a68d07c3c8  version\n"
        ));
        assert_eq!(parse(&text, HashKind::Sha256, "sha256sum").unwrap(), lines);
    }

    #[test]
    fn digest_of_fixture_version_text() {
        let d = HashKind::Sha256.digest_reader(&b"4.5.7\n"[..]).unwrap();
        assert_eq!(
            d,
            "5186e88612feecac695acd0f27bd3b758213febb46a6fa4a105164a68d07c3c8"
        );
        let m = HashKind::Md5.digest_reader(&b""[..]).unwrap();
        assert_eq!(m, "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn malformed_lines_are_refused() {
        for text in [
            "abc  version\n",
            &format!("{}version\n", "a".repeat(64)),
            &format!("{}  \n", "g".repeat(64)),
            &format!("{}  version\r", "a".repeat(64)),
            &format!("{}  ver\tsion\n", "a".repeat(64)),
        ] {
            let err = parse(text, HashKind::Sha256, "sha256sum").unwrap_err();
            assert!(
                err.to_string().starts_with("sha256sum: line 1 is not"),
                "{err}"
            );
        }
    }

    #[test]
    fn verify_names_the_bad_member() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("version"), "4.5.7\n").unwrap();
        let good = HashKind::Md5.digest_reader(&b"4.5.7\n"[..]).unwrap();
        let ok = vec![HashLine {
            digest: good,
            path: "version".into(),
        }];
        verify(dir.path(), &ok, HashKind::Md5, &KnownDigests::default()).unwrap();

        let bad = vec![HashLine {
            digest: "0".repeat(32),
            path: "version".into(),
        }];
        let err = verify(dir.path(), &bad, HashKind::Md5, &KnownDigests::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("member 'version'"), "{err}");

        let missing = vec![HashLine {
            digest: "0".repeat(32),
            path: "db/x.db".into(),
        }];
        let err = verify(
            dir.path(),
            &missing,
            HashKind::Md5,
            &KnownDigests::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("'db/x.db'") && err.contains("missing"),
            "{err}"
        );

        let outside = vec![HashLine {
            digest: "0".repeat(32),
            path: "../etc/passwd".into(),
        }];
        assert!(verify(
            dir.path(),
            &outside,
            HashKind::Md5,
            &KnownDigests::default()
        )
        .is_err());
    }
}
