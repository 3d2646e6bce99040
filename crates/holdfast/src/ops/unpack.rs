//! The phase verify and restore begin with: the archive unpacked into the
//! operation's work directory (every member's checksum verified as it is
//! read) and its version checked against the installed application's; and
//! how the unpacked dumps are read for their table of contents.

use std::path::Path;

use crate::archive::{ArchiveReader, Codec, ReadLimits};
use crate::log::Log;
use crate::ops::WorkDir;
use crate::pg::restore::DumpSource;
use crate::profile::Profile;
use crate::Result;

/// Unpack `file` into `work` and check its version against `installed`;
/// `None` (verify on a machine without the application) skips the check.
pub fn unpack(
    file: &Path,
    work: &WorkDir,
    profile: &Profile,
    installed: Option<&str>,
    log: &Log,
) -> Result<ArchiveReader> {
    log.line(&format!(
        "Opening tarball {} to {}",
        file.display(),
        work.path().display()
    ));
    let archive = ArchiveReader::open_in(file, work.path(), ReadLimits::default())?;
    log.line(&format!(
        "Verified {} of every member",
        archive.hash_kind().file_name()
    ));
    log.line("Verifying version");
    match installed {
        Some(installed) => {
            crate::profile::check_restore_version(&profile.version, archive.version(), installed)?
        }
        None => log.line(&format!(
            "Installed version unknown: the archive's version {} was not checked against it",
            archive.version()
        )),
    }
    Ok(archive)
}

/// An unpacked custom dump member for the programs that read only its table
/// of contents: the file itself, or, when the member is compressed, a
/// stream of it decoded as pg_restore reads its head (nothing is
/// decompressed to disk for that).
pub fn dump_head(member: &Path, codec: Codec) -> Result<DumpSource<'_>> {
    Ok(match codec {
        Codec::None => DumpSource::File(member),
        codec => DumpSource::Stream {
            name: member,
            input: codec.open_decoded(member)?,
        },
    })
}
