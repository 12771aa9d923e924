//! A throwaway PostgreSQL server of the test's own (initdb into a temp dir, own port), for
//! tests that stop and start the database: the shared test environment's server must stay up
//! for the tests running beside them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::env::TestEnv;

pub struct PrivatePg {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    pub port: u16,
}

/// Runs a PostgreSQL binary as the `postgres` OS user when we are root (the server refuses
/// to run as root).
fn as_postgres(bin: &Path) -> Command {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    });
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PrivatePg {
    /// initdb (trust authentication on 127.0.0.1) and start.
    pub fn start(env: &TestEnv) -> PrivatePg {
        let bindir = PathBuf::from(
            env.var("TRIB_PG_BINDIR")
                .unwrap_or("/usr/lib/postgresql/15/bin"),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        // The server runs as `postgres`: it must own its directory.
        let _ = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(dir.path())
            .status();
        let out = as_postgres(&bindir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePg {
            port: free_port(),
            dir,
            bindir,
        };
        pg.resume();
        pg
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(args)
            .output()
            .expect("run pg_ctl")
    }

    /// Stops the server (fast shutdown: connections are cut, as in an outage).
    pub fn stop(&self) {
        let out = self.pg_ctl(&["-m", "fast", "-w", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (again) on the same port and data.
    pub fn resume(&self) {
        let log = self.dir.path().join("postgres.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let out = self.pg_ctl(&[
            "-w",
            "-t",
            "60",
            "-l",
            &log.display().to_string(),
            "-o",
            &options,
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }
}
