//! What a restore's journal says, as written to `journal.json`: the files
//! kept, the directories created, the databases filled, the conf files
//! rewritten and provisioning's server changes, each with what undoes it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ops::provisioning::Undo;
use crate::pg::provision::{Admin, ClusterInit, InitializedCluster};
use crate::pg::{ConnParams, PgTools};
use crate::{Password, Result};

/// What the journal says, as written to `journal.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) install_root: PathBuf,
    pub(super) archive: PathBuf,
    pub(super) pid: u32,
    /// The guardian of the restoring process: it kills the client programs
    /// (pg_restore and its workers) once that process is gone, so a rollback
    /// by another run waits for it before touching a database.
    #[serde(default)]
    pub(super) guardian: Option<crate::child::ProcessId>,
    pub(super) started: String,
    /// Files the restore replaces (with their kept copy in `kept/`) or creates.
    pub(super) files: Vec<KeptFile>,
    /// Directories the restore creates, deepest last.
    pub(super) created_dirs: Vec<PathBuf>,
    /// Existing directories whose mode and owner the restore sets.
    pub(super) dir_modes: Vec<DirMode>,
    /// Databases the restore loads into (they were empty).
    pub(super) filled: Vec<Conn>,
    /// Conf files rewritten with new credentials.
    pub(super) rewrites: Vec<Rewrite>,
    /// What provisioning did on the server, in order.
    pub(super) server: Vec<ServerStep>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct KeptFile {
    pub(super) path: PathBuf,
    /// Name in `kept/`; `None` for a file the restore creates.
    pub(super) kept: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DirMode {
    pub(super) path: PathBuf,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Rewrite {
    pub(super) file: PathBuf,
    /// The file as it was, in `kept/`.
    pub(super) kept: String,
    /// The dated copy the rewrite leaves next to the file, once made.
    pub(super) dated_copy: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Conn {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) user: String,
    pub(super) database: String,
    pub(super) password: Option<String>,
    pub(super) secured: bool,
    pub(super) secured_validation: bool,
}

impl From<&ConnParams> for Conn {
    fn from(p: &ConnParams) -> Conn {
        Conn {
            host: p.host.clone(),
            port: p.port,
            user: p.user.clone(),
            database: p.database.clone(),
            password: p.password.as_ref().map(|p| p.expose().to_string()),
            secured: p.secured,
            secured_validation: p.secured_validation,
        }
    }
}

impl Conn {
    pub(super) fn params(&self) -> ConnParams {
        ConnParams {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            database: self.database.clone(),
            password: self.password.clone().map(Password::new),
            secured: self.secured,
            secured_validation: self.secured_validation,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AdminRecord {
    pub(super) conn: Conn,
    pub(super) bindir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum ServerStep {
    ClusterDebian {
        version: u32,
        name: String,
        hba_file: PathBuf,
    },
    ClusterInitdb {
        bindir: PathBuf,
        data_dir: PathBuf,
        socket_dir: PathBuf,
        port: u16,
        hba_file: PathBuf,
    },
    DropRole(AdminRecord, String),
    DropDatabase(AdminRecord, String),
    DropExtension(AdminRecord, String, String),
    RestorePassword(AdminRecord, String, Option<String>),
    RestoreOwner(AdminRecord, String, String),
}

fn admin_record(a: &Admin) -> AdminRecord {
    AdminRecord {
        conn: Conn::from(a.params()),
        bindir: a.tools().bindir.clone(),
    }
}

fn admin_of(r: &AdminRecord) -> Result<Admin> {
    Ok(Admin::new(r.conn.params(), PgTools::in_dir(&r.bindir)?))
}

impl ServerStep {
    pub(super) fn of(undo: &Undo) -> ServerStep {
        match undo {
            Undo::Cluster(c) => match &c.init {
                ClusterInit::Debian { version, name } => ServerStep::ClusterDebian {
                    version: *version,
                    name: name.clone(),
                    hba_file: c.hba_file.clone(),
                },
                ClusterInit::Initdb {
                    bindir,
                    data_dir,
                    socket_dir,
                    port,
                } => ServerStep::ClusterInitdb {
                    bindir: bindir.clone(),
                    data_dir: data_dir.clone(),
                    socket_dir: socket_dir.clone(),
                    port: *port,
                    hba_file: c.hba_file.clone(),
                },
            },
            Undo::DropRole(a, r) => ServerStep::DropRole(admin_record(a), r.clone()),
            Undo::DropDatabase(a, d) => ServerStep::DropDatabase(admin_record(a), d.clone()),
            Undo::DropExtension(a, d, e) => {
                ServerStep::DropExtension(admin_record(a), d.clone(), e.clone())
            }
            Undo::RestorePassword(a, r, h) => {
                ServerStep::RestorePassword(admin_record(a), r.clone(), h.clone())
            }
            Undo::RestoreOwner(a, d, o) => {
                ServerStep::RestoreOwner(admin_record(a), d.clone(), o.clone())
            }
        }
    }

    pub(super) fn undo(&self) -> Result<Undo> {
        Ok(match self {
            ServerStep::ClusterDebian {
                version,
                name,
                hba_file,
            } => Undo::Cluster(InitializedCluster {
                init: ClusterInit::Debian {
                    version: *version,
                    name: name.clone(),
                },
                hba_file: hba_file.clone(),
            }),
            ServerStep::ClusterInitdb {
                bindir,
                data_dir,
                socket_dir,
                port,
                hba_file,
            } => Undo::Cluster(InitializedCluster {
                init: ClusterInit::Initdb {
                    bindir: bindir.clone(),
                    data_dir: data_dir.clone(),
                    socket_dir: socket_dir.clone(),
                    port: *port,
                },
                hba_file: hba_file.clone(),
            }),
            ServerStep::DropRole(a, r) => Undo::DropRole(admin_of(a)?, r.clone()),
            ServerStep::DropDatabase(a, d) => Undo::DropDatabase(admin_of(a)?, d.clone()),
            ServerStep::DropExtension(a, d, e) => {
                Undo::DropExtension(admin_of(a)?, d.clone(), e.clone())
            }
            ServerStep::RestorePassword(a, r, h) => {
                Undo::RestorePassword(admin_of(a)?, r.clone(), h.clone())
            }
            ServerStep::RestoreOwner(a, d, o) => {
                Undo::RestoreOwner(admin_of(a)?, d.clone(), o.clone())
            }
        })
    }
}
