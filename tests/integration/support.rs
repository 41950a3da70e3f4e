//! Starts the real `bifrost` binary on a free loopback port with a fresh data folder and speaks
//! HTTP to it. Each [`Server`] is killed when dropped; its stdout/stderr are kept for assertions.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bifrost")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct ServerBuilder {
    binary: Option<PathBuf>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    data: tempfile::TempDir,
    port_from_settings: bool,
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub port: u16,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    pub data: tempfile::TempDir,
}

impl ServerBuilder {
    pub fn new() -> Self {
        Self {
            binary: None,
            args: vec!["serve".into()],
            envs: Vec::new(),
            cwd: None,
            data: tempfile::tempdir().unwrap(),
            port_from_settings: false,
        }
    }

    /// Runs another `bifrost` executable (a package's) instead of the one under test.
    pub fn binary(mut self, path: &Path) -> Self {
        self.binary = Some(path.to_owned());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// Runs as the Functions host starts it (`FUNCTIONS_CUSTOMHANDLER_PORT` on a free port):
    /// only then are the payload routes (`POST /{FunctionName}`) served.
    pub fn under_host(self) -> Self {
        let port = free_port().to_string();
        self.env("FUNCTIONS_CUSTOMHANDLER_PORT", &port)
    }

    /// Uses the data folder every Azurite-backed server of this test run shares: the tables in
    /// Azurite name the audit key, whose material lives in the folder's secret store, so servers
    /// on one Azurite need one secret store (as instances in Azure share one Key Vault).
    pub fn azurite_data(self) -> Self {
        let dir = azurite_data_dir();
        self.env("BIFROST_DATA_DIR", dir.to_str().unwrap())
    }

    /// Leave the port to the settings (e.g. a local.settings.json in `cwd`).
    pub fn port_from_settings(mut self) -> Self {
        self.port_from_settings = true;
        self
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Runs on the data folder of an earlier server (a restart).
    pub fn reuse_data(mut self, data: tempfile::TempDir) -> Self {
        self.data = data;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = match &self.binary {
            Some(path) => Command::new(path),
            None => Command::new(bin()),
        };
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("BIFROST_DATA_DIR", self.data.path().join("data"))
            .env(
                "BIFROST_WORKSPACE_LOCATION",
                repo_root().join("examples/workspace"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.current_dir(
            self.cwd
                .clone()
                .unwrap_or_else(|| self.data.path().to_owned()),
        );
        cmd
    }

    /// Runs to completion (for start-up failures): exit status and stderr.
    pub fn run_to_exit(self) -> (std::process::ExitStatus, String) {
        let out = self.command().output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Like [`Self::run_to_exit`], but kills the process if it is still running after `limit`
    /// (then the status is `None`).
    pub fn run_to_exit_within(self, limit: Duration) -> (Option<std::process::ExitStatus>, String) {
        let mut child = self.command().spawn().unwrap();
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status, stderr)
    }

    /// Starts the server and waits until it prints its address.
    pub fn start(self) -> Server {
        let has_port = self.port_from_settings
            || self.args.iter().any(|a| a == "--port")
            || self
                .envs
                .iter()
                .any(|(k, _)| k == "FUNCTIONS_CUSTOMHANDLER_PORT" || k == "BIFROST_PORT");
        let mut cmd = self.command();
        if !has_port {
            cmd.arg("--port").arg("0");
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().unwrap();
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let pipe = child.stdout.take().unwrap();
            let sink = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.strip_prefix("bifrost listening on ") {
                        let _ = tx.send(addr.to_owned());
                    }
                    sink.lock().unwrap().push_str(&line);
                    sink.lock().unwrap().push('\n');
                }
            });
        }
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("bifrost did not start; stderr:\n{}", stderr.lock().unwrap());
            }
        };
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        Server {
            child,
            base,
            port,
            stderr,
            stdout,
            data: self.data,
        }
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `kill -9`: no shutdown, no draining. Returns the data folder for a restart.
    pub fn kill9(mut self) -> tempfile::TempDir {
        signal(&self.child, "KILL");
        let _ = self.child.wait();
        std::mem::replace(&mut self.data, tempfile::tempdir().unwrap())
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(&self.child, "TERM");
        self.wait_exit()
    }

    /// Waits (up to 30 s) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Give the reader threads a moment to drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "bifrost did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The audit log of a data folder, with the audit key of its secret store (to verify it).
pub async fn audit_log(data_dir: &Path) -> bifrost::audit::AuditLog {
    let tables = Arc::new(
        bifrost_store::table::SqliteTables::open(&data_dir.join("tables.sqlite")).unwrap(),
    );
    let secrets = Arc::new(bifrost_secrets::LocalSecrets::open(data_dir, None).unwrap());
    bifrost::audit::AuditLog::open(tables, secrets)
        .await
        .unwrap()
}

/// The data folder shared by the servers and CLI runs that use this test run's Azurite (see
/// [`ServerBuilder::azurite_data`]); one per Azurite process.
pub fn azurite_data_dir() -> PathBuf {
    let azurite = std::env::var("BIFROST_TEST_AZURITE_PID").unwrap_or_else(|_| "manual".into());
    let dir = std::env::temp_dir().join(format!("bifrost-test-azurite-{azurite}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A function key made with the CLI against a data folder (`org`: an org-scoped key).
pub fn cli_key(data_dir: &Path, name: &str, org: Option<&str>) -> String {
    cli_key_with(data_dir, &[], name, org)
}

/// [`cli_key`] with extra environment (e.g. Azure storage settings).
pub fn cli_key_with(
    data_dir: &Path,
    env: &[(&str, &str)],
    name: &str,
    org: Option<&str>,
) -> String {
    let mut cmd = Command::new(bin());
    cmd.args(["keys", "create", name, "--data-dir"])
        .arg(data_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(org) = org {
        cmd.args(["--org", org]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
