//! `engine-backup --help`: the options in engine-backup's own style (`--opt=value`).

/// The usage text. Options that exist per database are shown for the engine
/// database (`--db-…`) and listed with the other prefixes below them.
pub fn usage(db_prefixes: &[String]) -> String {
    let others: Vec<String> = db_prefixes
        .iter()
        .filter(|p| p.as_str() != "db")
        .map(|p| format!("--{p}-"))
        .collect();
    format!(
        r#"engine-backup: back up and restore an oVirt engine environment (holdfast {version})
USAGE:
    engine-backup [--mode=MODE] [--scope=SCOPE] [--file=FILE] [--log=FILE]
 MODE is one of the following:
    backup                          back up system into FILE
    restore                         restore system from FILE
    verify                          verify FILE
 SCOPE is one of the following:
    all                             complete backup/restore (default)
    files                           files only
    db                              engine database only
    dwhdb                           dwh database only
    keycloakdb                      keycloak database only
    managedblockdb                  managed block database only
    cinderlibdb                     cinderlib database only (restore of old archives)
    grafanadb                       grafana database only
 The option --scope can be passed more than once, with different scopes.
 --file=FILE                        file to use during backup or restore
                                    (backup default: /var/lib/ovirt-engine-backup/ovirt-engine-backup-TIMESTAMP.backup)
 --log=FILE                         log file to use
                                    (default: /var/log/ovirt-engine-backup/ovirt-engine-MODE-TIMESTAMP.log)
 --tmpdir=DIR                       use DIR for temporary files (default: $TMPDIR, else the system's)
 --archive-compressor=COMPRESSOR    compress the archive with COMPRESSOR (default: gzip)
 --files-compressor=COMPRESSOR      compress the files inside the archive with COMPRESSOR (default: xz)
 --keep-temporary-data              on restore, do not clean up the engine's temporary tables
                                    (tasks, jobs, DbJustRestored, HA VM status)
 --restore-permissions              restore ownership and grants of database objects
 --no-restore-permissions           do not restore them: everything is owned by the database user
   One of these two is required when restoring a custom-format dump, unless provisioning.
 --provision-all-databases          provision every database the backup holds (see --provision-db)
   Provisioning implies --restore-permissions unless one of the two is given. When no
   --change-…-credentials and no --provision-… option is given, all the databases are local
   and none is reachable with the restored credentials, all are provisioned (as engine-backup
   4.5 does).
 --admin-host=HOST|DIR              the PostgreSQL superuser connection used for provisioning:
                                    a host, or the directory of the server's unix socket
                                    (default: /var/run/postgresql)
 --admin-port=PORT                  its port (default: the port of the database provisioned)
 --admin-user=USER                  the superuser (default: postgres; run as root, holdfast
                                    connects as the OS user postgres by peer authentication)
 --admin-passfile=FILE              read the superuser's password from the first line of FILE
 --init-cluster                     when the local PostgreSQL cluster is not initialised,
                                    initialise and start it (pg_createcluster on Debian, else
                                    initdb in /var/lib/pgsql/data) and add the pg_hba lines the
                                    application needs
 --init-cluster-datadir=DIR         with --init-cluster: initdb into DIR (socket in --admin-host)
 --install-root=DIR                 treat DIR as the root of the engine's files (default: /,
                                    or $HOLDFAST_INSTALL_ROOT)
 --installed-version=X.Y.Z          the installed ovirt-engine version, on machines without its
                                    package (default: from the package database, or
                                    $HOLDFAST_INSTALLED_VERSION)
 --profile=NAME|FILE                application profile (default: ovirt-engine)
 --fast-backup                      shortcut: --archive-compressor=gzip --files-compressor=xz
                                    --db-dump-format=custom --db-compressor=None (and the same for dwh)
 --fast-restore                     the same as --fast-backup
 --small-size                       shortcut: --archive-compressor=xz --files-compressor=xz
                                    --db-dump-format=plain --db-compressor=xz (and the same for dwh)
   Use one shortcut, then fine-tune with the individual options.
 COMPRESSOR is one of: gzip, bzip2, xz, zstd, None

 Database options, shown for the engine database; the same exist with the prefixes
 {others}:
 --db-compressor=COMPRESSOR         compress the dump with COMPRESSOR (default: None)
 --db-dump-format=FORMAT            plain or custom (default: custom); on restore the archive's
                                    format is used
 --db-restore-jobs=N                pg_restore jobs (default: {jobs}); about 150% of the cores is good
 --provision-db                     on restore, create the role and the database first, as the
                                    PostgreSQL superuser, with the credentials of the backup:
                                    the role with its password (scram-sha-256), the database
                                    owned by it (UTF8, the backed-up locale) and its extensions.
                                    An existing empty database is reused; a non-empty one stops
                                    the restore before anything is written.
 --change-db-credentials            restore into the database given by the options below instead
                                    of the one in the backed-up configuration
 --db-host=HOST                     database host
 --db-port=PORT                     database port (default: 5432)
 --db-user=USER                     database user
 --db-name=NAME                     database name
 --db-passfile=FILE                 read the password from the first line of FILE
 --db-password=PASSWORD             the password (visible in the process list: prefer
                                    --db-passfile, the prompt or the environment variable)
 --db-password                      prompt for the password (no echo)
 --db-secured                       connect with SSL
 --db-secured-validation            validate the server's certificate and host
                                    (--db-sec-validation is the same)
 The passwords can also come from OVIRT_ENGINE_DATABASE_PASSWORD, OVIRT_DWH_DATABASE_PASSWORD,
 OVIRT_KEYCLOAK_DATABASE_PASSWORD, OVIRT_MANAGEDBLOCK_DATABASE_PASSWORD and
 OVIRT_CINDERLIB_DATABASE_PASSWORD, with the matching --change-…-credentials option.

 ENVIRONMENT:
    HOLDFAST_INSTALL_ROOT, HOLDFAST_INSTALLED_VERSION, TMPDIR

 Archives are written to a temporary name and renamed when complete; a failed backup
 leaves no file at --file. Restore checks the archive, the version, the permissions
 option and the target databases before it writes anything.

 Exit status: 0 success, 1 failure (bad options included; as oVirt's engine-backup),
 130/143 interrupted by SIGINT/SIGTERM (cleaned up as after a failure).
"#,
        version = env!("CARGO_PKG_VERSION"),
        others = others.join(", "),
        jobs = holdfast::ops::Jobs::DEFAULT,
    )
}
