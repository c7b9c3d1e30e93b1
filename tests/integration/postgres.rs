//! A real PostgreSQL for the tests, never a mock. `MENTIONBRIDGE_TEST_DATABASE_URL` names
//! one the developer runs; otherwise a throwaway cluster is started from the system's
//! PostgreSQL binaries (Debian's `postgresql` package) in a temporary directory, on a free
//! port on 127.0.0.1, and removed when the test ends. The server refuses to run as root,
//! and CI runs as root: then the cluster belongs to the `postgres` system user (or
//! `MENTIONBRIDGE_TEST_PG_USER`) and every server command runs through `runuser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cluster every test of this binary that needs no server of its own makes its
/// databases on, started on first use. A static is never dropped, so the cluster's
/// watchdog stops it once the test process has exited (see
/// [`Postgres::stop_when_process_exits`]).
pub fn shared() -> &'static Postgres {
    static CLUSTER: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(|| {
        let pg = Postgres::start();
        pg.stop_when_process_exits();
        pg
    })
}

/// Where the developer's own database is, when they have one.
pub const DATABASE_URL_ENV: &str = "MENTIONBRIDGE_TEST_DATABASE_URL";
const SERVER_USER_ENV: &str = "MENTIONBRIDGE_TEST_PG_USER";
/// The role the throwaway cluster is created with (trust authentication, loopback only).
const ROLE: &str = "mentionbridge";

pub struct Postgres {
    url: String,
    cluster: Option<Cluster>,
}

/// A cluster this test started and owns.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// The system user the server runs as when the tests run as root.
    run_as: Option<String>,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// The developer's database, or a fresh throwaway cluster. Panics with what is missing
    /// (the binaries, the server user) rather than skipping: a test that needs PostgreSQL
    /// must not pass without one.
    pub fn start() -> Postgres {
        if let Ok(url) = std::env::var(DATABASE_URL_ENV) {
            if !url.trim().is_empty() {
                return Postgres { url, cluster: None };
            }
        }
        let bin = server_binaries().unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries (initdb, pg_ctl) found under /usr/lib/postgresql \
                 or via pg_config; install Debian's `postgresql` package or set {DATABASE_URL_ENV}"
            )
        });
        let run_as = running_as_root()
            .then(|| std::env::var(SERVER_USER_ENV).unwrap_or_else(|_| "postgres".to_string()));
        let dir = tempfile::Builder::new()
            .prefix("mentionbridge-pg-")
            .tempdir()
            .expect("a temporary directory for the cluster");
        let data = dir.path().join("data");
        if let Some(user) = &run_as {
            // The server user must own the directory it writes to and its socket lives in.
            run(Command::new("chown").arg(user).arg(dir.path()), "chown");
        }
        let cluster = Cluster {
            bin,
            data,
            port: free_port(),
            run_as,
            _dir: dir,
        };
        cluster.server(
            "initdb",
            &[
                "-D",
                &cluster.data.to_string_lossy(),
                "-U",
                ROLE,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        cluster.pg_ctl_start();
        Postgres {
            url: format!("postgres://{ROLE}@127.0.0.1:{}/postgres", cluster.port),
            cluster: Some(cluster),
        }
    }

    /// A fresh, empty database `mb_…` on this server; its URL.
    pub fn fresh_database(&self) -> String {
        static DATABASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let name = format!(
            "mb_{}_{}_{}",
            std::process::id(),
            stamp,
            DATABASES.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        self.psql(&format!("CREATE DATABASE {name}"));
        self.url_for(&name)
    }

    /// Start the server again after [`Postgres::stop`], on the same port and data.
    pub fn start_again(&self) {
        self.cluster
            .as_ref()
            .expect("only a cluster the test started can be started again")
            .pg_ctl_start();
    }

    /// Where the server is: the `postgres` database (or the developer's own database).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The URL of database `name` on the same server, with the same role and options
    /// (`postgres://…` URLs only, as the throwaway cluster's and most developers' are).
    pub fn url_for(&self, name: &str) -> String {
        let (base, query) = match self.url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (self.url.as_str(), None),
        };
        let authority = base.find("://").map_or(0, |i| i + 3);
        let path = base[authority..]
            .find('/')
            .map_or(base.len(), |i| authority + i);
        let mut url = format!("{}/{name}", &base[..path]);
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// For a cluster held in a `static` (whose `Drop` never runs): stop the server and
    /// remove its directory once this test process has exited. A small watchdog shell,
    /// in a process group of its own (so Ctrl-C on the tests does not take it along),
    /// polls the test process every second, then runs the same `pg_ctl stop -m
    /// immediate` as `Drop` and removes the temporary directory.
    pub fn stop_when_process_exits(&self) {
        use std::os::unix::process::CommandExt;
        let Some(cluster) = &self.cluster else {
            return;
        };
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let pg_ctl = cluster.bin.join("pg_ctl");
        let data = cluster.data.to_string_lossy().to_string();
        let stop = [
            pg_ctl.to_string_lossy().as_ref(),
            "-D",
            &data,
            "stop",
            "-m",
            "immediate",
        ]
        .iter()
        .map(|a| quote(a))
        .collect::<Vec<_>>()
        .join(" ");
        let stop = match &cluster.run_as {
            Some(user) => format!("runuser -u {} -- {stop}", quote(user)),
            None => stop,
        };
        let dir = cluster.data.parent().expect("data has a parent");
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf {dir}",
            pid = std::process::id(),
            dir = quote(&dir.to_string_lossy()),
        );
        // Not waited for on purpose: it outlives this process (and is reaped by init).
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("the cluster's watchdog starts");
    }

    /// Stop the server at once (as a crash would) and start it again on the same port:
    /// what committed before must still be there.
    pub fn restart(&self) {
        let cluster = self
            .cluster
            .as_ref()
            .expect("only a cluster the test started can be restarted");
        cluster.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        cluster.pg_ctl_start();
    }

    /// Stop the server at once (as a crash would) and leave it stopped.
    pub fn stop(&self) {
        self.cluster
            .as_ref()
            .expect("only a cluster the test started can be stopped")
            .pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    /// Serve TLS with `cert` and `key` (PEM files), besides plain connections: the files
    /// are copied into the cluster's directory for the server user, and the server
    /// reloads its configuration.
    pub fn enable_tls(&self, cert: &Path, key: &Path) {
        let cluster = self
            .cluster
            .as_ref()
            .expect("only a cluster the test started serves TLS");
        let (cert_to, key_to) = (
            cluster.data.join("server.crt"),
            cluster.data.join("server.key"),
        );
        std::fs::copy(cert, &cert_to).expect("the certificate is copied");
        std::fs::copy(key, &key_to).expect("the key is copied");
        // The server refuses a key others can read.
        run(Command::new("chmod").arg("600").arg(&key_to), "chmod");
        if let Some(user) = &cluster.run_as {
            run(
                Command::new("chown").arg(user).arg(&cert_to).arg(&key_to),
                "chown",
            );
        }
        self.psql("ALTER SYSTEM SET ssl = on");
        self.psql("SELECT pg_reload_conf()");
        // The reload is asynchronous: wait until new sessions see it.
        for _ in 0..100 {
            if self.psql("SHOW ssl") == "on" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the server did not turn TLS on");
    }

    /// Whether this is a cluster the test started (not the developer's database).
    pub fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }

    /// Run SQL through `psql` and return its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in(&self.url, sql)
    }

    /// Run SQL through `psql` in the database at `url` (see [`Postgres::url_for`]).
    pub fn psql_in(&self, url: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(cluster) = &self.cluster {
            let _ = cluster
                .command(
                    "pg_ctl",
                    &[
                        "-D",
                        &cluster.data.to_string_lossy(),
                        "stop",
                        "-m",
                        "immediate",
                    ],
                )
                .output();
        }
    }
}

impl Cluster {
    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.data.parent().expect("data has a parent").display()
        );
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &self.log().to_string_lossy(),
            "-o",
            &options,
        ]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data.to_string_lossy().to_string();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.server("pg_ctl", &all);
    }

    fn log(&self) -> PathBuf {
        self.data
            .parent()
            .expect("data has a parent")
            .join("server.log")
    }

    fn server(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool, args)
            .output()
            .expect("a PostgreSQL tool runs");
        if !out.status.success() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            panic!("{tool} failed: {}\nserver log:\n{log}", describe(&out));
        }
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program).args(args);
                c
            }
            None => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with a server in it, else `pg_config`'s.
fn server_binaries() -> Option<PathBuf> {
    let has_server = |p: &Path| p.join("initdb").exists() && p.join("pg_ctl").exists();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_server(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    has_server(&bin).then_some(bin)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} cannot run: {e}"));
    assert!(out.status.success(), "{what} failed: {}", describe(&out));
}

fn describe(out: &Output) -> String {
    format!(
        "{}; {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_throwaway_cluster_starts_for_the_tests_and_keeps_committed_rows_across_a_crash() {
    let pg = Postgres::start();
    assert!(pg.url_for("other").contains("/other"));
    assert_eq!(pg.psql("select 1 + 1"), "2");
    pg.psql("create table kept (n int primary key)");
    pg.psql("insert into kept values (1), (2)");
    if pg.cluster.is_some() {
        // An immediate stop is a crash for PostgreSQL: it replays its WAL on start.
        pg.restart();
    }
    assert_eq!(pg.psql("select count(*) from kept"), "2");
    pg.psql("drop table kept");
}
