//! How every PostgreSQL client program runs.
//!
//! - `-w` (never prompt for a password) and `-h -p -U` from the [`ConnParams`];
//! - the password only through a 0600 pgpass file (`PGPASSFILE`), never in argv;
//! - `PGPASSWORD` and every other `PG*` variable of our own environment removed,
//!   so nothing but the given parameters decides where the program connects,
//!   and every secret variable too ([`crate::child::command`]);
//! - `PGSSLMODE=require` for a secured connection, `verify-full` when the
//!   certificate is validated;
//! - `LC_MESSAGES=C`, so the program's own messages are in English whatever the
//!   user's locale (success is judged by exit code, never by message text);
//! - stdin closed unless the caller feeds it; stderr captured;
//! - a process group of its own, watched by the guardian
//!   ([`crate::child::contain`]): a killed holdfast takes the program and every
//!   process it forked (pg_restore's `-j` workers) with it.
//!
//! [`ClientCommand::describe`] gives the loggable command line, engine-backup's
//! `pg_cmd running: pg_dump -w -U u -h h -p p db <args>`.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::process::{Child, ChildStdin, ChildStdout, ExitStatus, Stdio};
use std::thread::JoinHandle;

use crate::pg::{ConnParams, PgPass, PgTools};
use crate::{Error, IoContext, Result};

/// Where the database name goes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatabaseArg {
    /// `pg_dump … db` and `psql … db`.
    Positional,
    /// `pg_restore … -d db`.
    Flag,
    /// `pg_basebackup`: a replication connection names no database.
    Omitted,
}

/// A client program invocation, built up before it runs.
#[derive(Debug, Clone)]
pub struct ClientCommand {
    name: String,
    path: std::path::PathBuf,
    conn: Option<(ConnParams, DatabaseArg)>,
    args: Vec<OsString>,
}

impl ClientCommand {
    /// `program` (`pg_dump`, `pg_restore`, `psql`) of `tools`, connecting with `conn`.
    pub fn connected(tools: &PgTools, program: &str, conn: &ConnParams) -> Result<ClientCommand> {
        check_conn(conn)?;
        let style = match program {
            "pg_restore" => DatabaseArg::Flag,
            "pg_basebackup" => DatabaseArg::Omitted,
            _ => DatabaseArg::Positional,
        };
        Ok(ClientCommand {
            name: program.to_string(),
            path: tools.program(program),
            conn: Some((conn.clone(), style)),
            args: Vec::new(),
        })
    }

    /// `program` of `tools` without any connection (`pg_restore -l dump`).
    pub fn offline(tools: &PgTools, program: &str) -> ClientCommand {
        ClientCommand {
            name: program.to_string(),
            path: tools.program(program),
            conn: None,
            args: Vec::new(),
        }
    }

    /// Append one argument after the connection options.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut ClientCommand {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Append arguments after the connection options.
    pub fn args<I, S>(&mut self, args: I) -> &mut ClientCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// The program's name (`pg_dump`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full argument vector the program gets, without the program itself.
    pub fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some((conn, style)) = &self.conn {
            argv.extend(
                [
                    "-w",
                    "-U",
                    &conn.user,
                    "-h",
                    &conn.host,
                    "-p",
                    &conn.port.to_string(),
                ]
                .map(OsString::from),
            );
            match style {
                DatabaseArg::Flag => argv.extend(["-d".into(), conn.database.clone().into()]),
                DatabaseArg::Positional => argv.push(conn.database.clone().into()),
                DatabaseArg::Omitted => {}
            }
        }
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// `pg_cmd running: pg_dump -w -U u -h h -p p db <args>`: safe to log, as the
    /// password is never part of the command line.
    pub fn describe(&self) -> String {
        let mut text = format!("pg_cmd running: {}", self.name);
        for arg in self.argv() {
            text.push(' ');
            text.push_str(&shell_word(&arg.to_string_lossy()));
        }
        text
    }

    /// Start the program. `stdin` is `Stdio::null()` unless the caller feeds it
    /// ([`Stdio::piped`], then [`RunningCommand::take_stdin`]); stderr is always
    /// captured.
    pub fn spawn(&self, stdin: Stdio, stdout: Stdio) -> Result<RunningCommand> {
        self.spawn_observed(stdin, stdout, None)
    }

    /// [`ClientCommand::spawn`], with each stderr line `observer` claims
    /// (returns `true` for) handed to it and left out of what is captured:
    /// the progress lines of a `--verbose` program.
    pub fn spawn_observed(
        &self,
        stdin: Stdio,
        stdout: Stdio,
        observer: Option<LineObserver>,
    ) -> Result<RunningCommand> {
        let pgpass = match &self.conn {
            Some((conn, _)) => Some(PgPass::new([conn])?),
            None => None,
        };
        let mut cmd = crate::child::command(&self.path);
        cmd.args(self.argv())
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            let is_pg = key.to_str().is_some_and(|k| k.starts_with("PG"));
            if is_pg || key == "LC_ALL" || key == "LANGUAGE" {
                cmd.env_remove(&key);
            }
        }
        cmd.env("LC_MESSAGES", "C")
            .env("PGAPPNAME", "holdfast")
            .env("PGCONNECT_TIMEOUT", "15");
        if let Some(pgpass) = &pgpass {
            cmd.env("PGPASSFILE", pgpass.path());
        }
        if let Some((conn, _)) = &self.conn {
            if conn.secured {
                let mode = if conn.secured_validation {
                    "verify-full"
                } else {
                    "require"
                };
                cmd.env("PGSSLMODE", mode);
            }
        }
        crate::interrupt::tie_to_parent(&mut cmd);
        crate::child::contain(&mut cmd)?;
        let mut child = cmd
            .spawn()
            .context(|| format!("run {}", self.path.display()))?;
        crate::interrupt::track(child.id());
        let stderr = child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                match observer {
                    None => {
                        let _ = pipe.read_to_end(&mut buf);
                    }
                    Some(mut claims) => {
                        let mut lines = std::io::BufReader::new(pipe);
                        let mut line = Vec::new();
                        while matches!(
                            std::io::BufRead::read_until(&mut lines, b'\n', &mut line),
                            Ok(n) if n > 0
                        ) {
                            if !claims(&String::from_utf8_lossy(&line)) {
                                buf.extend_from_slice(&line);
                            }
                            line.clear();
                        }
                    }
                }
                buf
            })
        });
        Ok(RunningCommand {
            child,
            stderr,
            description: self.describe(),
            name: self.name.clone(),
            _pgpass: pgpass,
            reaped: false,
        })
    }

    /// Run to completion with `input` on stdin, capturing stdout and
    /// stderr. A program that stops reading before the end (`pg_restore -l`
    /// of a dump stream reads only its head) is not an error: the rest of
    /// `input` is not read.
    pub fn output_fed(&self, input: &mut dyn Read) -> Result<(Finished, Vec<u8>)> {
        let mut running = self.spawn(Stdio::piped(), Stdio::piped())?;
        let mut stdin = running
            .take_stdin()
            .ok_or_else(|| Error::failed(format!("{} started without an input pipe", self.name)))?;
        let stdout = running.take_stdout();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let read = stdout.map_or(Ok(0), |mut pipe| pipe.read_to_end(&mut out));
            read.map(|_| out)
        });
        let fed = match std::io::copy(input, &mut stdin) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map(drop),
        };
        drop(stdin);
        let stdout = reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the output reader panicked")))
            .context(|| format!("read the output of {}", self.name))?;
        let finished = running.wait()?;
        // A read error of the input is only ours when the program did not
        // finish on its own: it may have stopped reading first.
        if let Err(e) = fed {
            if !finished.success() {
                return Err(Error::io(format!("feed {}", self.name), e));
            }
        }
        Ok((finished, stdout))
    }

    /// Run to completion with stdin closed, capturing stdout and stderr.
    pub fn output(&self) -> Result<(Finished, Vec<u8>)> {
        let mut running = self.spawn(Stdio::null(), Stdio::piped())?;
        let mut stdout = Vec::new();
        if let Some(mut pipe) = running.take_stdout() {
            pipe.read_to_end(&mut stdout)
                .context(|| format!("read the output of {}", self.name))?;
        }
        Ok((running.wait()?, stdout))
    }
}

/// Refuse parameters that a client program would read as something else.
fn check_conn(conn: &ConnParams) -> Result<()> {
    // libpq reads a database "name" with `=` or a URI prefix as a connection string.
    let db = &conn.database;
    if db.contains('=') || db.starts_with("postgresql://") || db.starts_with("postgres://") {
        return Err(Error::usage(format!(
            "database name {db:?} would be read as a connection string by the PostgreSQL \
             client programs: give a plain database name"
        )));
    }
    for (what, value) in [("database", db), ("user", &conn.user), ("host", &conn.host)] {
        if value.is_empty() || value.starts_with('-') {
            return Err(Error::usage(format!(
                "{what} {value:?} is not usable on a command line: give a non-empty {what} \
                 that does not start with '-'"
            )));
        }
    }
    Ok(())
}

/// A word as a shell would need it, for a readable log line only (nothing is
/// ever run through a shell).
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./,:@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Sees each stderr line of a program as it comes; `true` claims it.
pub type LineObserver = Box<dyn FnMut(&str) -> bool + Send>;

/// A started client program.
#[derive(Debug)]
pub struct RunningCommand {
    child: Child,
    stderr: Option<JoinHandle<Vec<u8>>>,
    description: String,
    name: String,
    // Kept until the program has exited: it reads the file when it connects.
    _pgpass: Option<PgPass>,
    reaped: bool,
}

impl RunningCommand {
    /// Process id of the program.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The program's stdin, when it was spawned with `Stdio::piped()`.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The program's stdout, when it was spawned with `Stdio::piped()`.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Stop the program and what it forked (SIGKILL to its process group)
    /// after a failure on our side, and reap it. A psql killed this way never
    /// commits what it was sent.
    pub fn kill(mut self) -> Finished {
        crate::interrupt::untrack(self.child.id());
        crate::child::signal_group(self.child.id(), libc::SIGKILL);
        let status = crate::child::reap(&mut self.child).ok();
        self.finish(status)
    }

    /// Wait for the program to exit.
    pub fn wait(mut self) -> Result<Finished> {
        drop(self.child.stdin.take());
        let status = crate::child::reap(&mut self.child);
        crate::interrupt::untrack(self.child.id());
        let status = status.context(|| format!("wait for {}", self.name))?;
        Ok(self.finish(Some(status)))
    }

    fn finish(mut self, status: Option<ExitStatus>) -> Finished {
        self.reaped = true;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Finished {
            status,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            description: std::mem::take(&mut self.description),
            name: std::mem::take(&mut self.name),
        }
    }
}

impl Drop for RunningCommand {
    /// A program nobody waits for any more (an error or a panic on our side) is
    /// killed, so that no pg_dump or psql outlives the operation that started it.
    fn drop(&mut self) {
        if !self.reaped {
            crate::interrupt::untrack(self.child.id());
            crate::child::signal_group(self.child.id(), libc::SIGKILL);
            let _ = crate::child::reap(&mut self.child);
        }
    }
}

/// A client program that has exited.
#[derive(Debug)]
pub struct Finished {
    /// Exit status; `None` if it could not be collected.
    pub status: Option<ExitStatus>,
    /// Everything the program wrote to stderr.
    pub stderr: String,
    /// The loggable command line ([`ClientCommand::describe`]).
    pub description: String,
    name: String,
}

impl Finished {
    /// Whether the program exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `<program> <what> failed (exit status N): <stderr lines>` as one line.
    pub fn failure(&self, what: &str) -> Error {
        let status = match self.status.and_then(|s| s.code()) {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        let lines = self.stderr_lines();
        let detail = if lines.is_empty() {
            "no message".to_string()
        } else {
            lines.join(" | ")
        };
        Error::failed(format!("{} {what} failed ({status}): {detail}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Password;
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
            port: 54329,
            user: "engine".into(),
            database: "engine".into(),
            password: Some(Password::new("engine-fixture-pw-cmd")),
            secured: false,
            secured_validation: false,
        }
    }

    #[test]
    fn describes_like_engine_backup_without_the_password() {
        let mut dump = ClientCommand::connected(&tools(), "pg_dump", &conn()).unwrap();
        dump.args(["-E", "UTF8", "--format=custom"]);
        let text = dump.describe();
        assert_eq!(
            text,
            "pg_cmd running: pg_dump -w -U engine -h 127.0.0.1 -p 54329 engine -E UTF8 --format=custom"
        );
        assert!(!text.contains("engine-fixture-pw-cmd"));

        let mut restore = ClientCommand::connected(&tools(), "pg_restore", &conn()).unwrap();
        restore.args(["-j", "2", "/tmp/with space/engine.dump"]);
        assert_eq!(
            restore.describe(),
            "pg_cmd running: pg_restore -w -U engine -h 127.0.0.1 -p 54329 -d engine -j 2 \
             '/tmp/with space/engine.dump'"
        );
    }

    #[test]
    fn refuses_names_a_program_would_misread() {
        let mut c = conn();
        c.database = "host=evil dbname=x".into();
        let err = ClientCommand::connected(&tools(), "pg_dump", &c).unwrap_err();
        assert!(err.to_string().contains("connection string"), "{err}");
        let mut c = conn();
        c.user = "-c".into();
        assert!(ClientCommand::connected(&tools(), "psql", &c).is_err());
    }
}
