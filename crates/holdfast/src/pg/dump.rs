//! Dumping one database with pg_dump, streamed into any writer.
//!
//! The flags are engine-backup's (`-E UTF8 --disable-dollar-quoting
//! --disable-triggers`, plus `--no-owner --no-privileges` for plain dumps), so
//! an archive holdfast writes restores with engine-backup and the other way
//! round. Success is pg_dump's exit code; anything it writes to stderr on
//! success is a warning in the report, not a failure (engine-backup treats any
//! stderr output as fatal).

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;

use crate::pg::{ClientCommand, ConnParams, PgTools};
use crate::{Error, Result};

/// pg_dump's output format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DumpFormat {
    /// SQL text, restored with psql; made without owners and privileges.
    Plain,
    /// pg_dump's custom archive format, restored with pg_restore.
    #[default]
    Custom,
    /// One file per table in a directory, which pg_dump can write with
    /// several jobs (`-f` names the directory).
    Directory,
}

impl DumpFormat {
    /// The value of `--format`.
    pub fn as_str(self) -> &'static str {
        match self {
            DumpFormat::Plain => "plain",
            DumpFormat::Custom => "custom",
            DumpFormat::Directory => "directory",
        }
    }
}

/// How to dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOptions {
    /// Plain SQL or custom archive.
    pub format: DumpFormat,
    /// `-Z <n>` (0–9). `None` leaves pg_dump's default (gzip inside custom dumps),
    /// which engine-backup relies on; holdfast passes `Some(0)` and compresses
    /// the stream itself.
    pub compression: Option<u8>,
    /// `--snapshot=<name>`: dump as of a snapshot exported by another session
    /// (`pg_export_snapshot()`), which must stay open until pg_dump has started.
    pub snapshot: Option<String>,
    /// `--jobs=<n>`: tables dumped in parallel, only into a directory
    /// ([`DumpFormat::Directory`], see [`directory_dump_command`]).
    pub jobs: Option<u32>,
}

impl DumpOptions {
    /// engine-backup's dump: pg_dump's default compression.
    pub fn engine_backup(format: DumpFormat) -> DumpOptions {
        DumpOptions {
            format,
            compression: None,
            snapshot: None,
            jobs: None,
        }
    }

    /// holdfast's own dump: uncompressed (`-Z0`), for compression downstream.
    pub fn uncompressed(format: DumpFormat) -> DumpOptions {
        DumpOptions {
            format,
            compression: Some(0),
            snapshot: None,
            jobs: None,
        }
    }
}

/// What a successful dump produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpReport {
    /// The loggable command line.
    pub command: String,
    /// Bytes written to the sink.
    pub bytes: u64,
    /// Lines pg_dump wrote to stderr although it succeeded.
    pub warnings: Vec<String>,
    /// The version of the pg_dump that ran (`15.18`).
    pub pg_dump_version: String,
}

/// The pg_dump command line for `options`, for running or for showing.
pub fn dump_command(
    conn: &ConnParams,
    tools: &PgTools,
    options: &DumpOptions,
) -> Result<ClientCommand> {
    let mut cmd = ClientCommand::connected(tools, "pg_dump", conn)?;
    cmd.args([
        "-E",
        "UTF8",
        "--disable-dollar-quoting",
        "--disable-triggers",
    ]);
    cmd.arg(format!("--format={}", options.format.as_str()));
    if options.format == DumpFormat::Plain {
        cmd.args(["--no-owner", "--no-privileges"]);
    }
    if let Some(level) = options.compression {
        if level > 9 {
            return Err(Error::usage(format!(
                "pg_dump compression level {level} is out of range: give 0 to 9"
            )));
        }
        cmd.arg(format!("-Z{level}"));
    }
    if let Some(snapshot) = &options.snapshot {
        if snapshot.is_empty()
            || !snapshot
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Error::usage(format!(
                "{snapshot:?} is not a snapshot name as pg_export_snapshot() returns it"
            )));
        }
        cmd.arg(format!("--snapshot={snapshot}"));
    }
    if let Some(jobs) = options.jobs {
        if options.format != DumpFormat::Directory || jobs == 0 {
            return Err(Error::usage(format!(
                "pg_dump runs {jobs} jobs only into a directory: give at least 1, with the directory format"
            )));
        }
        cmd.arg(format!("--jobs={jobs}"));
    }
    Ok(cmd)
}

/// The pg_dump command that writes a directory-format dump into `dir`
/// (which must not exist), with `options.jobs` jobs.
pub fn directory_dump_command(
    conn: &ConnParams,
    tools: &PgTools,
    options: &DumpOptions,
    dir: &Path,
) -> Result<ClientCommand> {
    let options = DumpOptions {
        format: DumpFormat::Directory,
        ..options.clone()
    };
    let mut cmd = dump_command(conn, tools, &options)?;
    cmd.arg("-f").arg(dir);
    Ok(cmd)
}

/// Dump the database of `conn` into `sink`, streaming (no temporary file).
///
/// If writing to the sink fails, pg_dump is stopped and the sink's error is
/// returned; if pg_dump fails, the error carries its own message.
pub fn dump_database(
    conn: &ConnParams,
    tools: &PgTools,
    options: &DumpOptions,
    sink: &mut dyn Write,
) -> Result<DumpReport> {
    if options.format == DumpFormat::Directory {
        return Err(Error::usage(
            "a directory dump is written into a directory, not streamed: use directory_dump_command",
        ));
    }
    let cmd = dump_command(conn, tools, options)?;
    let mut running = cmd.spawn(Stdio::null(), Stdio::piped())?;
    let mut stdout = running
        .take_stdout()
        .ok_or_else(|| Error::failed("pg_dump started without an output pipe"))?;
    widen_pipe(&stdout);
    let copied = copy_stream(&mut stdout, sink);
    drop(stdout);
    let bytes = match copied {
        Ok(bytes) => bytes,
        Err(CopyError::Read(e)) => {
            running.kill();
            return Err(Error::io("read the output of pg_dump", e));
        }
        Err(CopyError::Write(e)) => {
            running.kill();
            return Err(Error::io(
                format!("write the dump of database '{}'", conn.database),
                e,
            ));
        }
    };
    let finished = running.wait()?;
    if !finished.success() {
        return Err(finished.failure(&format!("of database '{}'", conn.database)));
    }
    if let Err(e) = sink.flush() {
        return Err(Error::io(
            format!("write the dump of database '{}'", conn.database),
            e,
        ));
    }
    Ok(DumpReport {
        command: finished.description.clone(),
        bytes,
        warnings: finished.stderr_lines(),
        pg_dump_version: tools.version.clone(),
    })
}

enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Let the pipe from pg_dump hold 1 MiB instead of 64 KiB: each read then
/// takes more, and pg_dump, the compressor and the fingerprinter wake each
/// other far less often (on 2 cores the switches cost as much as the
/// fingerprints). A pipe that cannot grow (a lower
/// `/proc/sys/fs/pipe-max-size`) stays as it is.
fn widen_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ only reads the descriptor, which the caller keeps open.
    unsafe {
        libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// `io::copy`, telling a failing reader from a failing writer.
fn copy_stream(from: &mut dyn Read, to: &mut dyn Write) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tools() -> PgTools {
        PgTools {
            bindir: PathBuf::from("/usr/lib/postgresql/15/bin"),
            major: 15,
            minor: 18,
            version: "15.18".into(),
        }
    }

    fn conn() -> ConnParams {
        ConnParams {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "engine".into(),
            database: "engine".into(),
            password: None,
            secured: false,
            secured_validation: false,
        }
    }

    #[test]
    fn engine_backup_flags() {
        let plain = dump_command(
            &conn(),
            &tools(),
            &DumpOptions::engine_backup(DumpFormat::Plain),
        )
        .unwrap();
        assert_eq!(
            plain.describe(),
            "pg_cmd running: pg_dump -w -U engine -h 127.0.0.1 -p 5432 engine -E UTF8 \
             --disable-dollar-quoting --disable-triggers --format=plain --no-owner --no-privileges"
        );
        let custom = dump_command(
            &conn(),
            &tools(),
            &DumpOptions::uncompressed(DumpFormat::Custom),
        )
        .unwrap();
        assert!(custom
            .describe()
            .ends_with("--disable-triggers --format=custom -Z0"));
    }

    #[test]
    fn directory_dump_with_jobs() {
        let options = DumpOptions {
            format: DumpFormat::Directory,
            compression: Some(1),
            snapshot: Some("00000003-0000001B-1".into()),
            jobs: Some(4),
        };
        let cmd =
            directory_dump_command(&conn(), &tools(), &options, Path::new("/tmp/w/dump")).unwrap();
        assert!(cmd.describe().ends_with(
            "--format=directory -Z1 --snapshot=00000003-0000001B-1 --jobs=4 -f /tmp/w/dump"
        ));
        let streamed = DumpOptions {
            jobs: Some(4),
            ..DumpOptions::uncompressed(DumpFormat::Custom)
        };
        assert!(dump_command(&conn(), &tools(), &streamed).is_err());
        assert!(dump_database(&conn(), &tools(), &options, &mut Vec::new()).is_err());
    }

    #[test]
    fn refuses_bad_options() {
        let mut options = DumpOptions::uncompressed(DumpFormat::Custom);
        options.compression = Some(10);
        assert!(dump_command(&conn(), &tools(), &options).is_err());
        options.compression = None;
        options.snapshot = Some("x; rm".into());
        assert!(dump_command(&conn(), &tools(), &options).is_err());
    }
}
