//! The simplest job without an application profile: `holdfast backup
//! --database-url postgres://… --database-passfile F --path DIR`, then verify (deep) and
//! a restore onto another server with --target, from the same archive.

mod support;

use support::*;

#[test]
fn a_database_url_and_a_directory_round_trip_without_a_profile() {
    let c = pgsandbox::Cluster::start().unwrap();
    c.create_role("shop", "shop pw").unwrap();
    c.create_database("shop", "shop").unwrap();
    let source = tcp(&c, "shop", "shop pw", "shop");
    holdfast::pg::connect(&source)
        .unwrap()
        .batch_execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, total numeric(10,2));
             INSERT INTO orders (total) SELECT g * 1.5 FROM generate_series(1, 500) g;",
        )
        .unwrap();
    let before = checksums(&source);
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("uploads");
    std::fs::create_dir(&uploads).unwrap();
    std::fs::write(uploads.join("invoice.pdf"), "%PDF invoice\n").unwrap();
    std::fs::write(dir.path().join("pw"), "shop pw\n").unwrap();
    let url = format!("postgres://shop@127.0.0.1:{}/shop", c.port());
    let holdfast = |args: &[&str]| {
        let all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        run(env!("CARGO_BIN_EXE_holdfast"), &all, dir.path())
    };

    // A password in the URL is refused, nothing written.
    let bad = format!("postgres://shop:secret@127.0.0.1:{}/shop", c.port());
    let r = holdfast(&["backup", "--database-url", &bad, "--file", "x.backup"]);
    assert_eq!(r.code, 2);
    r.fails_with("--database-url: the URL holds a password");
    assert!(!r.stderr.contains("secret"));
    assert!(!dir.path().join("x.backup").exists());

    let uploads_arg = uploads.display().to_string();
    let b = holdfast(&[
        "backup",
        "--database-url",
        &url,
        "--database-passfile",
        "pw",
        "--path",
        &uploads_arg,
        "--file",
        "shop.backup",
    ]);
    b.ok();
    let manifest = holdfast::archive::peek_manifest(&dir.path().join("shop.backup")).unwrap();
    assert_eq!(manifest.profile, "postgresql");
    assert_eq!(manifest.scopes, ["files", "db"]);

    let v = holdfast(&["verify", "--deep", "shop.backup"]);
    v.ok();
    assert!(
        v.stdout
            .contains("1 table restored and compared, all equal"),
        "{}",
        v.stdout
    );

    // Restore the database onto another server: there is no config file
    // naming it, so the target is given.
    let t = pgsandbox::Cluster::start().unwrap();
    std::fs::write(dir.path().join("new-pw"), "new pw\n").unwrap();
    let target = format!("postgres://shop@127.0.0.1:{}/shop", t.port());
    let socket = t.socket_dir().display().to_string();
    let without = holdfast(&[
        "restore",
        "--file",
        "shop.backup",
        "--scope",
        "db",
        "--no-restore-permissions",
    ]);
    without.fails_with("--target db=postgres://USER@HOST:PORT/DATABASE");
    holdfast(&[
        "restore",
        "--file",
        "shop.backup",
        "--scope",
        "db",
        "--target",
        &target,
        "--target-passfile",
        "new-pw",
        "--provision",
        "db",
        "--admin-host",
        &socket,
    ])
    .ok();
    assert_eq!(checksums(&tcp(&t, "shop", "new pw", "shop")), before);
}
