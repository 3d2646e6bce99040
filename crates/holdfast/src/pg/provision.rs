//! Provisioning on a PostgreSQL server as its superuser: the application's
//! role and database, the extensions its dump needs, the locale, the pg_hba
//! lines, and a local cluster that is not initialised yet.
//!
//! Everything runs through [`Admin`], one `psql` per call with the SQL on its
//! stdin. A program is used rather than an in-process connection because the
//! usual way to be the local superuser is peer authentication over the unix
//! socket as the operating-system user `postgres`: run as root, holdfast starts
//! `psql` as that user. Passwords never reach the server in clear text: roles
//! get a SCRAM-SHA-256 verifier computed here.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::pg::sql::{quote_ident, quote_literal};
use crate::pg::{ConnParams, PgPass, PgTools};
use crate::secret::Password;
use crate::{Error, IoContext, Result};

/// engine-setup's locale for the databases it creates; used when the archive
/// does not record the source database's locale.
pub const DEFAULT_LOCALE: &str = "en_US.UTF-8";

/// The default directory of the server's unix socket on Debian and RHEL.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Field separator of [`Admin::query`] output (ASCII unit separator).
const FIELD_SEPARATOR: char = '\u{1f}';

/// The operating-system user a program runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl OsUser {
    /// The user of that name, if it exists and is not root.
    pub fn lookup(name: &str) -> Option<OsUser> {
        let user = nix::unistd::User::from_name(name).ok()??;
        (!user.uid.is_root()).then(|| OsUser {
            name: name.to_string(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    fn apply(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        cmd.uid(self.uid)
            .gid(self.gid)
            .env("HOME", "/")
            .env("USER", &self.name)
            .current_dir("/");
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A superuser session on one server.
#[derive(Debug, Clone)]
pub struct Admin {
    params: ConnParams,
    tools: PgTools,
    run_as: Option<OsUser>,
}

impl Admin {
    /// Connect as `params.user` (database `params.database`, usually
    /// `postgres`). Run as root over a unix socket without a password, `psql`
    /// runs as the operating-system user of the same name, so that the
    /// server's peer authentication accepts it.
    pub fn new(params: ConnParams, tools: PgTools) -> Admin {
        let peer = params.is_socket() && params.password.is_none() && running_as_root();
        let run_as = if peer {
            OsUser::lookup(&params.user)
        } else {
            None
        };
        Admin {
            params,
            tools,
            run_as,
        }
    }

    /// Where and as whom it connects (the password is never shown).
    pub fn params(&self) -> &ConnParams {
        &self.params
    }

    /// The client programs it runs.
    pub fn tools(&self) -> &PgTools {
        &self.tools
    }

    /// Run `sql` in `database` and return its rows, each a list of fields.
    pub fn query(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        let out = self.psql(database, sql, true)?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split(FIELD_SEPARATOR).map(str::to_string).collect())
            .collect())
    }

    /// Run statements in `database`; the first error stops them.
    pub fn execute(&self, database: &str, sql: &str) -> Result<()> {
        self.psql(database, sql, false).map(|_| ())
    }

    /// Whether the server accepts this session (`SELECT 1`), with its error.
    pub fn check(&self) -> Result<()> {
        let rows = self.query(
            &self.params.database,
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
        )?;
        if rows.first().and_then(|r| r.first()).map(String::as_str) != Some("t") {
            return Err(Error::usage(format!(
                "{} is not a superuser: provisioning needs the PostgreSQL superuser (--admin-user)",
                self.params.display()
            )));
        }
        Ok(())
    }

    fn psql(&self, database: &str, sql: &str, rows: bool) -> Result<String> {
        let mut conn = self.params.clone();
        conn.database = database.to_string();
        let pgpass = match &conn.password {
            Some(_) => Some(PgPass::new([&conn])?),
            None => None,
        };
        let mut cmd = crate::child::command(self.tools.program("psql"));
        cmd.args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1"]);
        if rows {
            cmd.args(["-A", "-t", "-F"])
                .arg(FIELD_SEPARATOR.to_string());
        }
        cmd.args([
            "-h",
            &conn.host,
            "-p",
            &conn.port.to_string(),
            "-U",
            &conn.user,
        ])
        .args(["-d", &conn.database, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("PG")) || key == "LC_ALL" {
                cmd.env_remove(&key);
            }
        }
        cmd.env("LC_MESSAGES", "C")
            .env("PGAPPNAME", "holdfast")
            .env("PGCONNECT_TIMEOUT", "15");
        if let Some(p) = &pgpass {
            cmd.env("PGPASSFILE", p.path());
        }
        if let Some(user) = &self.run_as {
            user.apply(&mut cmd);
        }
        crate::interrupt::tie_to_parent(&mut cmd);
        crate::child::contain(&mut cmd)?;
        let mut child = cmd
            .spawn()
            .context(|| "run psql as the PostgreSQL superuser".into())?;
        // The SQL is small: written whole before the output is read.
        let mut stdin = child.stdin.take().expect("piped stdin");
        let feed = stdin.write_all(sql.as_bytes());
        drop(stdin);
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stderr_pipe, &mut buf);
            buf
        });
        let mut stdout = Vec::new();
        let read =
            std::io::Read::read_to_end(child.stdout.as_mut().expect("piped stdout"), &mut stdout);
        let status = crate::child::reap(&mut child).context(|| "wait for psql".into())?;
        read.context(|| "read the output of psql".into())?;
        let stderr = stderr_reader.join().unwrap_or_default();
        let out = std::process::Output {
            status,
            stdout,
            stderr,
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || feed.is_err() {
            let first = stderr
                .lines()
                .find(|l| l.contains("ERROR") || l.contains("FATAL") || l.contains("error"))
                .or_else(|| stderr.lines().next())
                .unwrap_or("psql failed")
                .trim()
                .to_string();
            return Err(Error::postgres(format!(
                "as superuser {}: {}",
                conn.display(),
                first.trim_start_matches("psql:<stdin>:").trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// What the server has, read once before anything is changed.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    pub server_version_num: u32,
    pub roles: BTreeSet<String>,
    /// Database name and owner.
    pub databases: Vec<(String, String)>,
    pub available_extensions: BTreeSet<String>,
    /// Operating-system locales the server knows (from `pg_collation`).
    pub locales: BTreeSet<String>,
    /// template0's (collate, ctype): a locale the server certainly has.
    pub default_locale: (String, String),
}

impl ServerFacts {
    pub fn read(admin: &Admin) -> Result<ServerFacts> {
        let rows = admin.query(
            &admin.params.database,
            "SELECT 'version', current_setting('server_version_num') \
             UNION ALL SELECT 'role', rolname::text FROM pg_roles \
             UNION ALL SELECT 'database', datname::text || chr(31) || pg_get_userbyid(datdba)::text FROM pg_database \
             UNION ALL SELECT 'extension', name::text FROM pg_available_extensions \
             UNION ALL SELECT 'locale', collcollate::text FROM pg_collation \
                        WHERE collprovider = 'c' AND collcollate IS NOT NULL \
             UNION ALL SELECT 'default', datcollate::text || chr(31) || datctype::text \
                        FROM pg_database WHERE datname = 'template0'",
        )?;
        let mut facts = ServerFacts::default();
        for row in rows {
            let value = |i: usize| row.get(i).cloned().unwrap_or_default();
            match row[0].as_str() {
                "version" => facts.server_version_num = value(1).parse().unwrap_or(0),
                "role" => {
                    facts.roles.insert(value(1));
                }
                "database" => facts.databases.push((value(1), value(2))),
                "extension" => {
                    facts.available_extensions.insert(value(1));
                }
                "locale" => {
                    facts.locales.insert(value(1));
                }
                "default" => facts.default_locale = (value(1), value(2)),
                _ => {}
            }
        }
        Ok(facts)
    }

    /// The owner of a database, `None` when it does not exist.
    pub fn database_owner(&self, name: &str) -> Option<&str> {
        self.databases
            .iter()
            .find(|(d, _)| d == name)
            .map(|(_, o)| o.as_str())
    }

    /// Whether the server can create a database with this locale.
    pub fn has_locale(&self, locale: &str) -> bool {
        let wanted = normalize_locale(locale);
        wanted == "c"
            || wanted == "posix"
            || normalize_locale(&self.default_locale.0) == wanted
            || self.locales.iter().any(|l| normalize_locale(l) == wanted)
    }
}

/// `en_US.UTF-8` and `en_US.utf8` are the same locale.
fn normalize_locale(name: &str) -> String {
    name.to_ascii_lowercase().replace("utf-8", "utf8")
}

/// The locale a database is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale {
    pub collate: String,
    pub ctype: String,
    /// The locale that was wanted and is not on the server, when this is a fallback.
    pub replaces: Option<String>,
}

/// The recorded (collate, ctype) if the server has them, else the server's
/// own default when it is UTF-8 compatible, else `C.UTF-8`, else `C`.
pub fn choose_locale(wanted: (&str, &str), facts: &ServerFacts) -> Locale {
    if facts.has_locale(wanted.0) && facts.has_locale(wanted.1) {
        return Locale {
            collate: wanted.0.to_string(),
            ctype: wanted.1.to_string(),
            replaces: None,
        };
    }
    let replaces = Some(if wanted.0 == wanted.1 {
        wanted.0.to_string()
    } else {
        format!("{}/{}", wanted.0, wanted.1)
    });
    let utf8_ok = |l: &str| {
        let n = normalize_locale(l);
        n == "c" || n == "posix" || n.ends_with(".utf8")
    };
    let (collate, ctype) = &facts.default_locale;
    let (collate, ctype) = if utf8_ok(collate) && utf8_ok(ctype) && !collate.is_empty() {
        (collate.clone(), ctype.clone())
    } else if facts.has_locale("C.UTF-8") {
        ("C.UTF-8".to_string(), "C.UTF-8".to_string())
    } else {
        ("C".to_string(), "C".to_string())
    };
    Locale {
        collate,
        ctype,
        replaces,
    }
}

/// The first user object in `database`, or `None` when it is empty enough to
/// restore into (extensions, languages and an empty `public` schema only).
pub fn first_object(admin: &Admin, database: &str) -> Result<Option<String>> {
    const NOT_EXTENSION: &str = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = o.oid \
                                 AND d.deptype = 'e')";
    const USER_SCHEMA: &str = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'";
    let sql = format!(
        "SELECT what FROM ( \
           SELECT 'schema ' || quote_ident(o.nspname) AS what FROM pg_namespace o \
            WHERE o.nspname NOT IN ('public', 'information_schema') AND o.nspname !~ '^pg_' \
              AND {NOT_EXTENSION} \
           UNION ALL SELECT 'relation ' || o.oid::regclass::text FROM pg_class o \
             JOIN pg_namespace n ON n.oid = o.relnamespace \
            WHERE o.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_SCHEMA} AND {NOT_EXTENSION} \
           UNION ALL SELECT 'function ' || o.oid::regprocedure::text FROM pg_proc o \
             JOIN pg_namespace n ON n.oid = o.pronamespace WHERE {USER_SCHEMA} AND {NOT_EXTENSION} \
           UNION ALL SELECT 'type ' || o.oid::regtype::text FROM pg_type o \
             JOIN pg_namespace n ON n.oid = o.typnamespace \
            WHERE o.typtype IN ('b', 'e', 'd', 'r') AND o.typrelid = 0 \
              AND NOT (o.typcategory = 'A' AND o.typelem <> 0) AND {USER_SCHEMA} AND {NOT_EXTENSION} \
           UNION ALL SELECT 'large object ' || oid::text FROM pg_largeobject_metadata \
         ) objects ORDER BY 1 LIMIT 1"
    );
    Ok(admin
        .query(database, &sql)?
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next()))
}

/// Extensions installed in a database.
pub fn installed_extensions(admin: &Admin, database: &str) -> Result<BTreeSet<String>> {
    Ok(admin
        .query(database, "SELECT extname::text FROM pg_extension")?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect())
}

/// The stored password verifier of a role (`None`: no password), to put back later.
pub fn password_hash(admin: &Admin, role: &str) -> Result<Option<String>> {
    let rows = admin.query(
        &admin.params.database,
        &format!(
            "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = {}",
            quote_literal(role)
        ),
    )?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .filter(|h| !h.is_empty()))
}

/// The SCRAM-SHA-256 verifier of a password, what the server stores.
pub fn scram_verifier(password: &Password) -> String {
    postgres_protocol::password::scram_sha_256(password.expose().as_bytes())
}

/// `CREATE ROLE "name" WITH LOGIN PASSWORD '<verifier>'`.
pub fn create_role(admin: &Admin, name: &str, password: &Password) -> Result<()> {
    admin.execute(
        &admin.params.database,
        &format!(
            "CREATE ROLE {} WITH LOGIN PASSWORD {}",
            quote_ident(name),
            quote_literal(&scram_verifier(password))
        ),
    )
}

/// Give an existing role LOGIN and this password.
pub fn set_password(admin: &Admin, name: &str, password: &Password) -> Result<()> {
    admin.execute(
        &admin.params.database,
        &format!(
            "ALTER ROLE {} WITH LOGIN PASSWORD {}",
            quote_ident(name),
            quote_literal(&scram_verifier(password))
        ),
    )
}

/// Put back a stored verifier read by [`password_hash`].
pub fn restore_password_hash(admin: &Admin, name: &str, hash: Option<&str>) -> Result<()> {
    let value = hash.map_or("NULL".to_string(), quote_literal);
    admin.execute(
        &admin.params.database,
        &format!("ALTER ROLE {} WITH PASSWORD {value}", quote_ident(name)),
    )
}

/// `CREATE DATABASE "name" OWNER "owner" TEMPLATE template0 ENCODING 'UTF8' …`.
pub fn create_database(admin: &Admin, name: &str, owner: &str, locale: &Locale) -> Result<()> {
    let locale = format!(
        " LC_COLLATE {} LC_CTYPE {}",
        quote_literal(&locale.collate),
        quote_literal(&locale.ctype)
    );
    create_database_with(admin, name, owner, &locale)
}

/// [`create_database`] with the server's default locale.
pub fn create_database_default_locale(admin: &Admin, name: &str, owner: &str) -> Result<()> {
    create_database_with(admin, name, owner, "")
}

fn create_database_with(admin: &Admin, name: &str, owner: &str, locale: &str) -> Result<()> {
    admin.execute(
        &admin.params.database,
        &format!(
            "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'{locale}",
            quote_ident(name),
            quote_ident(owner),
        ),
    )
}

/// A role without a password and without privileges (`NOSUPERUSER
/// NOCREATEDB NOCREATEROLE`), that can log in or not.
pub fn create_unprivileged_role(admin: &Admin, name: &str, login: bool) -> Result<()> {
    admin.execute(
        &admin.params.database,
        &format!(
            "CREATE ROLE {} {} NOSUPERUSER NOCREATEDB NOCREATEROLE",
            quote_ident(name),
            if login { "LOGIN" } else { "NOLOGIN" }
        ),
    )
}

/// `GRANT "role" TO "member"`: `member` acts as `role` (gives objects to it).
pub fn grant_membership(admin: &Admin, role: &str, member: &str) -> Result<()> {
    admin.execute(
        &admin.params.database,
        &format!("GRANT {} TO {}", quote_ident(role), quote_ident(member)),
    )
}

/// Let `role` create objects in the `public` schema of `database`, which
/// PostgreSQL 15 and later grant to nobody.
pub fn grant_create_on_public(admin: &Admin, database: &str, role: &str) -> Result<()> {
    admin.execute(
        database,
        &format!("GRANT CREATE ON SCHEMA public TO {}", quote_ident(role)),
    )
}

/// `ALTER DATABASE "name" OWNER TO "owner"`.
pub fn set_database_owner(admin: &Admin, name: &str, owner: &str) -> Result<()> {
    admin.execute(
        &admin.params.database,
        &format!(
            "ALTER DATABASE {} OWNER TO {}",
            quote_ident(name),
            quote_ident(owner)
        ),
    )
}

/// Create an extension in a database, as superuser.
pub fn create_extension(admin: &Admin, database: &str, name: &str) -> Result<()> {
    admin.execute(
        database,
        &format!("CREATE EXTENSION IF NOT EXISTS {}", quote_ident(name)),
    )
}

/// Create an extension and the extensions it requires (`CASCADE`), as superuser.
pub fn create_extension_with_requirements(admin: &Admin, database: &str, name: &str) -> Result<()> {
    admin.execute(
        database,
        &format!(
            "CREATE EXTENSION IF NOT EXISTS {} CASCADE",
            quote_ident(name)
        ),
    )
}

/// Drop an extension created by [`create_extension`].
pub fn drop_extension(admin: &Admin, database: &str, name: &str) -> Result<()> {
    admin.execute(
        database,
        &format!("DROP EXTENSION IF EXISTS {} CASCADE", quote_ident(name)),
    )
}

/// Drop a database, disconnecting whoever is connected.
pub fn drop_database(admin: &Admin, name: &str) -> Result<()> {
    admin.execute(
        &admin.params.database,
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
    )
}

/// Drop a role (it must own nothing any more).
pub fn drop_role(admin: &Admin, name: &str) -> Result<()> {
    admin.execute(
        &admin.params.database,
        &format!("DROP ROLE IF EXISTS {}", quote_ident(name)),
    )
}

/// A random password of 22 characters from `/dev/urandom` (as engine-setup's).
pub fn random_password() -> Result<Password> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 64];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context(|| "read /dev/urandom".into())?;
    // 62 * 4 = 248: bytes from 248 up are dropped so every character is equally likely.
    let text: String = bytes
        .iter()
        .filter(|b| **b < 248)
        .take(22)
        .map(|b| ALPHABET[(*b % 62) as usize] as char)
        .collect();
    if text.len() < 22 {
        return Err(Error::failed("not enough random bytes for a password"));
    }
    Ok(Password::new(text))
}

/// The pg_hba lines that let the application's role reach its database over
/// TCP with a password, as engine-setup adds them.
pub fn hba_lines(database: &str, user: &str) -> Vec<String> {
    vec![
        format!("host    {database}    {user}    0.0.0.0/0    scram-sha-256"),
        format!("host    {database}    {user}    ::0/0        scram-sha-256"),
    ]
}

/// Extensions a custom dump creates (its `EXTENSION` table-of-contents entries).
pub fn extensions_in_toc(entries: &[crate::pg::TocEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.desc == "EXTENSION")
        .map(|e| e.name.clone())
        .collect()
}

/// Extensions a plain dump creates (`CREATE EXTENSION [IF NOT EXISTS] name`).
pub fn extensions_in_sql(sql: &mut dyn std::io::BufRead) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = sql
            .read_line(&mut line)
            .context(|| "read the plain dump".into())?;
        if n == 0 {
            break;
        }
        let Some(rest) = line.strip_prefix("CREATE EXTENSION ") else {
            continue;
        };
        let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
        let name = match rest.strip_prefix('"') {
            Some(q) => q.split_once('"').map(|(n, _)| n.to_string()),
            None => rest
                .split(|c: char| c.is_whitespace() || c == ';')
                .next()
                .map(str::to_string),
        };
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// How a local cluster that is not initialised yet gets created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterInit {
    /// Debian's `pg_createcluster <version> <name> --start`.
    Debian { version: u32, name: String },
    /// `initdb` into `data_dir`, then `pg_ctl start` with this socket and port.
    Initdb {
        bindir: PathBuf,
        data_dir: PathBuf,
        socket_dir: PathBuf,
        port: u16,
    },
}

/// A cluster [`init_cluster`] created, so that a failure can remove it.
#[derive(Debug, Clone)]
pub struct InitializedCluster {
    pub init: ClusterInit,
    pub hba_file: PathBuf,
}

impl ClusterInit {
    /// Debian's way when `pg_createcluster` is installed, else `initdb` into
    /// the RHEL default data directory, for the newest installed server.
    pub fn for_this_machine(socket_dir: &Path, port: u16) -> Result<ClusterInit> {
        let tools = PgTools::newest()?;
        if Path::new("/usr/bin/pg_createcluster").is_file() {
            return Ok(ClusterInit::Debian {
                version: tools.major,
                name: "main".into(),
            });
        }
        Ok(ClusterInit::Initdb {
            bindir: tools.bindir.clone(),
            data_dir: PathBuf::from("/var/lib/pgsql/data"),
            socket_dir: socket_dir.to_path_buf(),
            port,
        })
    }

    /// Whether a cluster already exists where this would create one.
    pub fn exists(&self) -> bool {
        match self {
            ClusterInit::Debian { version, name } => {
                Path::new(&format!("/etc/postgresql/{version}/{name}")).exists()
            }
            ClusterInit::Initdb { data_dir, .. } => data_dir.join("PG_VERSION").exists(),
        }
    }

    /// What it does, for the log.
    pub fn describe(&self) -> String {
        match self {
            ClusterInit::Debian { version, name } => {
                format!("pg_createcluster {version} {name} --start")
            }
            ClusterInit::Initdb { data_dir, .. } => {
                format!("initdb -D {} and pg_ctl start", data_dir.display())
            }
        }
    }
}

/// The OS user that owns the server's files: `postgres` when run as root.
fn server_os_user() -> Result<Option<OsUser>> {
    if !running_as_root() {
        return Ok(None);
    }
    OsUser::lookup("postgres").map(Some).ok_or_else(|| {
        Error::usage(
            "the operating-system user 'postgres' does not exist to own a new cluster: \
             install the PostgreSQL server package",
        )
    })
}

fn run_program(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .env("LC_MESSAGES", "C")
        .output()
        .context(|| format!("run {what}"))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" | ")
        )));
    }
    Ok(())
}

/// Initialise and start a local cluster (UTF8, peer for local connections,
/// scram-sha-256 over TCP), with `hba` appended to its pg_hba.conf.
pub fn init_cluster(init: &ClusterInit, hba: &[String]) -> Result<InitializedCluster> {
    let user = server_os_user()?;
    let hba_file = match init {
        ClusterInit::Debian { version, name } => {
            let mut cmd = crate::child::command("pg_createcluster");
            cmd.args([&version.to_string(), name.as_str(), "--start", "-e", "UTF8"])
                .args(["--", "--auth-local=peer", "--auth-host=scram-sha-256"]);
            run_program(cmd, "pg_createcluster")?;
            PathBuf::from(format!("/etc/postgresql/{version}/{name}/pg_hba.conf"))
        }
        ClusterInit::Initdb {
            bindir,
            data_dir,
            socket_dir,
            ..
        } => {
            std::fs::create_dir_all(data_dir)
                .context(|| format!("create {}", data_dir.display()))?;
            std::fs::create_dir_all(socket_dir)
                .context(|| format!("create {}", socket_dir.display()))?;
            if let Some(u) = &user {
                for d in [data_dir, socket_dir] {
                    std::os::unix::fs::chown(d, Some(u.uid), Some(u.gid))
                        .context(|| format!("chown {}", d.display()))?;
                }
            }
            let mut cmd = crate::child::command(bindir.join("initdb"));
            cmd.arg("-D")
                .arg(data_dir)
                .args(["-E", "UTF8", "-U", "postgres", "--auth-local=peer"])
                .arg("--auth-host=scram-sha-256");
            if let Some(u) = &user {
                u.apply(&mut cmd);
            }
            run_program(cmd, "initdb")?;
            data_dir.join("pg_hba.conf")
        }
    };
    let initialized = InitializedCluster {
        init: init.clone(),
        hba_file,
    };
    let configured = add_hba_lines(&initialized.hba_file, hba)
        .and_then(|()| start_or_reload(&initialized, user.as_ref()));
    if let Err(e) = configured {
        let _ = remove_cluster(&initialized);
        return Err(e);
    }
    Ok(initialized)
}

/// Append lines to a pg_hba.conf that does not have them yet.
pub fn add_hba_lines(hba_file: &Path, lines: &[String]) -> Result<()> {
    let text =
        std::fs::read_to_string(hba_file).context(|| format!("read {}", hba_file.display()))?;
    let missing: Vec<&String> = lines
        .iter()
        .filter(|l| !text.contains(l.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(hba_file)
        .context(|| format!("open {}", hba_file.display()))?;
    let mut add = String::from("# added by holdfast for the restored application\n");
    for l in missing {
        add.push_str(l);
        add.push('\n');
    }
    file.write_all(add.as_bytes())
        .context(|| format!("write {}", hba_file.display()))
}

fn start_or_reload(cluster: &InitializedCluster, user: Option<&OsUser>) -> Result<()> {
    match &cluster.init {
        ClusterInit::Debian { version, name } => {
            let mut cmd = crate::child::command("pg_ctlcluster");
            cmd.args([&version.to_string(), name.as_str(), "reload"]);
            run_program(cmd, "pg_ctlcluster reload")
        }
        ClusterInit::Initdb {
            bindir,
            data_dir,
            socket_dir,
            port,
        } => {
            let mut cmd = crate::child::command(bindir.join("pg_ctl"));
            cmd.arg("-D")
                .arg(data_dir)
                .arg("-l")
                .arg(data_dir.join("startup.log"))
                .arg("-o")
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=localhost",
                    socket_dir.display()
                ))
                .args(["-w", "-t", "60", "start"]);
            if let Some(u) = user {
                u.apply(&mut cmd);
            }
            run_program(cmd, "pg_ctl start")
        }
    }
}

/// Stop and remove a cluster [`init_cluster`] created.
pub fn remove_cluster(cluster: &InitializedCluster) -> Result<()> {
    match &cluster.init {
        ClusterInit::Debian { version, name } => {
            let mut cmd = crate::child::command("pg_dropcluster");
            cmd.args(["--stop", &version.to_string(), name.as_str()]);
            run_program(cmd, "pg_dropcluster")
        }
        ClusterInit::Initdb {
            bindir, data_dir, ..
        } => {
            if data_dir.join("postmaster.pid").exists() {
                let mut cmd = crate::child::command(bindir.join("pg_ctl"));
                cmd.arg("-D")
                    .arg(data_dir)
                    .args(["-m", "fast", "-w", "stop"]);
                if let Some(u) = server_os_user()? {
                    u.apply(&mut cmd);
                }
                run_program(cmd, "pg_ctl stop")?;
            }
            std::fs::remove_dir_all(data_dir).context(|| format!("remove {}", data_dir.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> ServerFacts {
        ServerFacts {
            locales: ["C.utf8", "de_DE.utf8"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            default_locale: ("C".into(), "C".into()),
            ..ServerFacts::default()
        }
    }

    #[test]
    fn a_locale_the_server_has_is_kept_in_either_spelling() {
        let l = choose_locale(("de_DE.UTF-8", "de_DE.UTF-8"), &facts());
        assert_eq!(l.collate, "de_DE.UTF-8");
        assert_eq!(l.replaces, None);
    }

    #[test]
    fn a_missing_locale_falls_back_to_the_server_default_and_says_so() {
        let l = choose_locale(("en_US.UTF-8", "en_US.UTF-8"), &facts());
        assert_eq!((l.collate.as_str(), l.ctype.as_str()), ("C", "C"));
        assert_eq!(l.replaces.as_deref(), Some("en_US.UTF-8"));
        let mut f = facts();
        f.default_locale = ("en_GB.ISO-8859-1".into(), "en_GB.ISO-8859-1".into());
        let l = choose_locale(("en_US.UTF-8", "en_US.UTF-8"), &f);
        assert_eq!(l.collate, "C.UTF-8");
    }

    #[test]
    fn random_passwords_are_long_and_differ() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.expose().len(), 22);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn plain_dump_extensions_are_found() {
        let sql = "SET x = 1;\nCREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA public;\n\
                   CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;\nCREATE TABLE t ();\n";
        let found = extensions_in_sql(&mut std::io::Cursor::new(sql)).unwrap();
        assert_eq!(found, ["uuid-ossp", "pgcrypto"]);
    }

    #[test]
    fn scram_verifiers_are_what_the_server_stores() {
        let v = scram_verifier(&Password::new("s3cret-pw"));
        assert!(crate::pg::roles::is_password_hash(&v), "{v}");
        assert!(!v.contains("s3cret-pw"));
    }
}
