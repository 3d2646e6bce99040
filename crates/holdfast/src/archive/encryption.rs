//! Archive files encrypted to age recipients (X25519 public keys `age1…`,
//! the format pg_back uses): the machine that backs up holds only the public
//! keys, so it can write archives but not read them; verify and restore take
//! the identity file (the private key).
//!
//! Beside an encrypted archive `X` lies `X.sha256`, the SHA-256 of the
//! encrypted bytes in `sha256sum` format: without the identity, verify can
//! still prove the file whole (nothing truncated or flipped since it was
//! written) and its age header well formed; only the identity proves the
//! contents.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::{Error, IoContext, Result};

/// The first line of every age file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// The public keys an archive is encrypted to.
#[derive(Clone)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|r| r.to_string()))
            .finish()
    }
}

impl Recipients {
    /// `age1…` keys as given (`what` names the option in messages).
    pub fn parse(keys: &[String], what: &str) -> Result<Recipients> {
        let mut parsed = Vec::new();
        for key in keys {
            let r = age::x25519::Recipient::from_str(key.trim()).map_err(|e| {
                Error::usage(format!(
                    "{what} {key}: not an age public key ({e}); give the age1… line age-keygen printed"
                ))
            })?;
            parsed.push(r);
        }
        Ok(Recipients(parsed))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Whether `path` is an age file.
pub fn is_encrypted(path: &Path) -> Result<bool> {
    let mut head = [0u8; AGE_MAGIC.len()];
    let mut file = File::open(path).context(|| format!("open {}", path.display()))?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(Error::io_path("read", path, e)),
        }
    }
    Ok(read == head.len() && head == AGE_MAGIC)
}

/// The checksum file beside an encrypted archive.
pub fn checksum_path(archive: &Path) -> PathBuf {
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    archive.with_file_name(name)
}

/// Encrypt `plain` to `recipients` into `out`; returns the SHA-256 of the
/// encrypted bytes, hex.
pub fn encrypt(plain: &Path, recipients: &Recipients, out: &mut File) -> Result<String> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.0.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| Error::usage(format!("cannot encrypt: {e}")))?;
    let plain_file = File::open(plain).context(|| format!("open {}", plain.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, plain_file);
    let hashing = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, out),
        hash: Sha256::new(),
    };
    let mut writer = encryptor
        .wrap_output(hashing)
        .map_err(|e| Error::io("write the encrypted archive", e))?;
    std::io::copy(&mut input, &mut writer).map_err(|e| Error::io("encrypt the archive", e))?;
    let hashing = writer
        .finish()
        .map_err(|e| Error::io("finish the encrypted archive", e))?;
    let HashingWriter { inner, hash } = hashing;
    inner
        .into_inner()
        .map_err(|e| Error::io("write the encrypted archive", e.into_error()))?;
    Ok(hex::encode(hash.finalize()))
}

/// Decrypt `archive` with the identities of `identity_file` into `dest`.
pub fn decrypt(archive: &Path, identity_file: &Path, dest: &Path) -> Result<()> {
    let identities = age::IdentityFile::from_file(identity_file.display().to_string())
        .map_err(|e| {
            Error::usage(format!(
                "cannot read the identity file {} ({e}); pass the file age-keygen wrote to --identity",
                identity_file.display()
            ))
        })?
        .into_identities()
        .map_err(|e| {
            Error::usage(format!(
                "the identity file {} holds no usable age identity ({e})",
                identity_file.display()
            ))
        })?;
    let input = BufReader::with_capacity(
        1 << 20,
        File::open(archive).context(|| format!("open {}", archive.display()))?,
    );
    let decryptor = age::Decryptor::new(input).map_err(|e| {
        Error::invalid(format!(
            "{}: not a readable age file ({e})",
            archive.display()
        ))
    })?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| {
            Error::usage(format!(
                "cannot decrypt {} with {}: {e}; pass the identity whose public key the archive was encrypted to",
                archive.display(),
                identity_file.display()
            ))
        })?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| Error::io_path("create", dest, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    std::io::copy(&mut reader, &mut out).map_err(|e| {
        Error::invalid(format!(
            "{}: the encrypted contents are damaged ({e})",
            archive.display()
        ))
    })?;
    out.flush().map_err(|e| Error::io_path("write", dest, e))?;
    Ok(())
}

/// What can be checked of an encrypted archive without its identity.
#[derive(Debug)]
pub struct OuterCheck {
    /// The encrypted bytes' SHA-256 matches the checksum file.
    pub digest: String,
}

/// The checksum file's digest against the encrypted bytes, and the age
/// header well formed.
pub fn check_outer(archive: &Path) -> Result<OuterCheck> {
    let sums = checksum_path(archive);
    let recorded = std::fs::read_to_string(&sums).map_err(|e| {
        Error::invalid(format!(
            "{} is encrypted and its checksum file {} cannot be read ({e}): without it and without --identity nothing can be checked",
            archive.display(),
            sums.display()
        ))
    })?;
    let recorded = recorded.split_whitespace().next().unwrap_or("").to_string();
    let mut hash = Sha256::new();
    let mut file = File::open(archive).context(|| format!("open {}", archive.display()))?;
    std::io::copy(&mut file, &mut hash).map_err(|e| Error::io_path("read", archive, e))?;
    let digest = hex::encode(hash.finalize());
    if digest != recorded {
        return Err(Error::invalid(format!(
            "{}: its SHA-256 is {digest}, but {} says {recorded}: the file changed since it was written",
            archive.display(),
            sums.display()
        )));
    }
    let input =
        BufReader::new(File::open(archive).context(|| format!("open {}", archive.display()))?);
    age::Decryptor::new(input).map_err(|e| {
        Error::invalid(format!(
            "{}: not a readable age file ({e})",
            archive.display()
        ))
    })?;
    Ok(OuterCheck { digest })
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
