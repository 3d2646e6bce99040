//! pgsandbox against the installed server: start-up, both authentication paths,
//! parallel clusters, and clean-up on drop, on panic and on stop.

use pgsandbox::Cluster;

fn tcp_connect(
    c: &Cluster,
    user: &str,
    password: &str,
    db: &str,
) -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new()
        .host(c.host())
        .port(c.port())
        .user(user)
        .password(password)
        .dbname(db)
        .connect(postgres::NoTls)
}

#[test]
fn superuser_over_socket_and_roles_with_scram_over_tcp() {
    let c = Cluster::start().expect("start cluster");
    assert!(c
        .socket_dir()
        .join(format!(".s.PGSQL.{}", c.port()))
        .exists());
    c.create_role("app", "s3cret: 'quoted' \"and\" $dollar")
        .unwrap();
    c.create_database("appdb", "app").unwrap();

    let mut client = tcp_connect(&c, "app", "s3cret: 'quoted' \"and\" $dollar", "appdb").unwrap();
    let row = client
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "app");
    assert_eq!(row.get::<_, String>(1), "appdb");

    let err = tcp_connect(&c, "app", "wrong", "appdb")
        .err()
        .expect("wrong password refused");
    let message = err
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(
        message.contains("password authentication failed"),
        "{err:?}"
    );

    let method = c
        .query_text(
            "postgres",
            "SELECT substr(rolpassword, 1, 13) FROM pg_authid WHERE rolname = 'app'",
        )
        .unwrap();
    assert_eq!(method.as_deref(), Some("SCRAM-SHA-256"));
    assert_eq!(
        c.query_text("postgres", "SELECT 1 WHERE false").unwrap(),
        None
    );
}

#[test]
fn parallel_clusters_are_independent_and_leave_nothing() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let c = Cluster::start().expect("start cluster");
                c.execute("postgres", &format!("CREATE TABLE t{i} (x int)"))
                    .unwrap();
                let dir = c.socket_dir().to_path_buf();
                let pid = std::fs::read_to_string(c.data_dir().join("postmaster.pid"))
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap()
                    .parse::<i32>()
                    .unwrap();
                (c.port(), dir, pid, c.startup_time())
                // dropped here
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ports: Vec<u16> = results.iter().map(|r| r.0).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 4, "each cluster has its own port");
    for (_, dir, pid, _) in &results {
        assert!(!dir.exists(), "{} removed", dir.display());
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "postmaster {pid} gone"
        );
    }
}

#[test]
fn panicking_test_still_stops_its_cluster() {
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let c = Cluster::start().unwrap();
        tx.send((c.socket_dir().to_path_buf(), c.data_dir()))
            .unwrap();
        panic!("deliberate panic while a cluster runs");
    })
    .join();
    assert!(joined.is_err());
    let (dir, _) = rx.recv().unwrap();
    assert!(!dir.exists(), "cluster dir removed during unwinding");
}

#[test]
fn stop_and_restart_server_keeps_data() {
    let mut c = Cluster::start().unwrap();
    c.execute(
        "postgres",
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)",
    )
    .unwrap();
    c.stop_server().unwrap();
    assert!(!c.is_running());
    assert!(c.connect("postgres").is_err());
    c.start_server().unwrap();
    assert_eq!(
        c.query_text("postgres", "SELECT x FROM kept")
            .unwrap()
            .as_deref(),
        Some("7")
    );
    let dir = c.socket_dir().to_path_buf();
    c.stop().unwrap();
    assert!(!dir.exists());
}

#[test]
fn fixed_port_that_is_taken_is_an_error() {
    let holder = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = holder.local_addr().unwrap().port();
    let err = Cluster::builder().port(port).start().unwrap_err();
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}
