//! Helpers shared by the end-to-end tests, benchmarks and examples: an in-process
//! `metered serve` on a loopback port, the project-local Python venv with the
//! official SDK, and bounded waits. Nothing here talks to anything but loopback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use metered_realtime::server::{Action, ChannelPattern, Server, ServerConfig, TokenRequest, mint_token};

/// Default bound for a single test step.
pub const STEP: Duration = Duration::from_secs(20);

/// The repository root.
pub fn repo_root() -> PathBuf {
    metered_guest_build::repo_root()
}

/// A running in-process server and the credentials of its dev config.
pub struct TestServer {
    /// The server (shut it down with [`TestServer::shutdown`]).
    pub server: Server,
    /// The configuration it runs with.
    pub config: ServerConfig,
}

impl TestServer {
    /// Starts a dev-config server on `127.0.0.1:0`, letting `tweak` adjust the config.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut config = ServerConfig::dev("127.0.0.1:0".parse().expect("loopback address"));
        tweak(&mut config);
        let server = Server::bind(config.clone()).await.expect("bind test server");
        config.listen = server.local_addr();
        TestServer { server, config }
    }

    /// Starts a dev-config server on `127.0.0.1:0`.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// `ws://127.0.0.1:PORT` — the base URL SDKs take.
    pub fn base_url(&self) -> String {
        format!("ws://{}", self.server.local_addr())
    }

    /// `http://127.0.0.1:PORT` — for REST calls.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.server.local_addr())
    }

    /// The dev publishable key.
    pub fn key(&self) -> &str {
        &self.config.publishable_keys[0].key
    }

    /// The REST bearer value `sk_id:sk_secret`.
    pub fn bearer(&self) -> String {
        let s = &self.config.secret_keys[0];
        format!("Bearer {}:{}", s.id, s.secret)
    }

    /// Mints a token with the dev secret key, issued at `issued_at` (seconds).
    pub fn token_at(&self, req: &TokenRequest, issued_at: i64) -> String {
        mint_token(&self.config.secret_keys[0], req, &self.config.limits, issued_at).expect("mint token").0
    }

    /// Mints a token issued now.
    pub fn token(&self, req: &TokenRequest) -> String {
        self.token_at(req, now_secs())
    }

    /// Graceful shutdown.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The project-local venv's python (created by `scripts/setup`).
pub fn venv_python() -> PathBuf {
    repo_root().join(".local/venv/bin/python")
}

/// Whether the official Python SDK is installed in the project venv.
pub fn python_sdk_available() -> bool {
    venv_python().exists()
}

/// Output of a finished helper process.
#[derive(Debug)]
pub struct ProcessOutput {
    /// Exit status code (None if killed by a signal).
    pub code: Option<i32>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

/// Runs `python script args...` from the project venv with a hard timeout; the
/// child is killed when the timeout passes or the future is dropped.
pub async fn run_python(script: &Path, args: &[&str], timeout: Duration) -> ProcessOutput {
    let mut cmd = tokio::process::Command::new(venv_python());
    cmd.arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", venv_python().display()));
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => ProcessOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("waiting for python: {e}"),
        Err(_) => panic!("python {} timed out after {timeout:?}", script.display()),
    }
}

/// Awaits `fut` for at most [`STEP`], panicking with `what` on timeout.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A token request for `peer_id`, valid for ten minutes, limited to channels
/// `room-*` and to subscribing.
pub fn limited_request(peer_id: &str) -> TokenRequest {
    TokenRequest {
        peer_id: peer_id.into(),
        expires_in_secs: 600,
        channels: Some(vec![ChannelPattern::try_from("room-*".to_owned()).expect("pattern")]),
        permissions: Some(vec![Action::Subscribe]),
        ..Default::default()
    }
}

pub use metered_guest_build::{GuestLang, component_cache, guest, rust_guest};

/// The `metered` binary with every feature (agent runtime, WebRTC), built
/// first: a no-op after a whole-workspace `--all-features` build, and never a
/// stale binary when only one test target was built.
pub fn metered_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-p", "metered-cli", "--all-features", "--bin", "metered"])
        .current_dir(repo_root())
        .status()
        .expect("cargo");
    assert!(status.success(), "building metered failed");
    let exe = std::env::current_exe().expect("test path");
    exe.parent().and_then(|d| d.parent()).expect("target/<profile>").join("metered")
}
