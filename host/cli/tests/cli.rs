//! The `metered` binary as a user runs it: config refusal naming the field,
//! `metered token`, and `metered serve` start-up, with every child bounded.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use metered_realtime::server::ServerConfig;
use metered_realtime::server::auth::Authenticator;

const BIN: &str = env!("CARGO_BIN_EXE_metered");

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("metered-cli-{}-{}", std::process::id(), name));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("metered.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
[[publishable_keys]]
key = "pk_live_cli"
channel_patterns = ["*"]
actions = ["publish", "subscribe", "presence", "send"]
[[secret_keys]]
id = "sk_id_cli"
secret = "sk_secret_cli_test"
channel_patterns = ["room-*"]
actions = ["publish", "subscribe"]
"#;

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    let path = temp_file("bad", &CONFIG.replace("\"subscribe\", \"presence\"", "\"subscribe\", \"presense\""));
    let out = Command::new(BIN).args(["serve", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("publishable_keys") && err.contains("presense"), "{err}");
}

#[test]
fn token_mints_a_jwt_the_server_accepts() {
    let path = temp_file("token", CONFIG);
    let out = Command::new(BIN)
        .args(["token", "--config"])
        .arg(&path)
        .args([
            "--peer-id",
            "agent-7",
            "--channels",
            "room-1",
            "--permissions",
            "subscribe",
            "--peer-metadata",
            r#"{"name":"Ada"}"#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let config = ServerConfig::from_file(&path).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let grant = Authenticator::new(std::sync::Arc::new(config)).token(token.trim(), now).unwrap();
    assert_eq!(&*grant.peer_id, "agent-7");
    assert!(grant.covers_channel("room-1") && !grant.covers_channel("room-2"));
    assert_eq!(grant.peer_metadata.unwrap()["name"], "Ada");
    let refused = Command::new(BIN)
        .args(["token", "--config"])
        .arg(&path)
        .args(["--peer-id", "x", "--channels", "other"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn serve_prints_how_to_connect_and_stops_on_sigterm() {
    let ready = std::env::temp_dir().join(format!("metered-cli-ready-{}", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !banner.contains("SignallingClient(api_key=") && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(l)) => banner.push_str(&format!("{l}\n")),
            _ => break,
        }
    }
    assert!(banner.contains("publishable key: pk_live_dev_"), "{banner}");
    assert!(banner.contains("url=\"ws://127.0.0.1:"), "{banner}");
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr = std::fs::read_to_string(&ready).unwrap();
    assert!(addr.starts_with("127.0.0.1:"));
    // SIGTERM: graceful shutdown, exit 0.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("metered serve did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(code.success(), "{code:?}");
    let _ = std::fs::remove_file(&ready);
}

#[cfg(all(feature = "sources", feature = "hosting"))]
#[test]
fn stream_refuses_hostile_sources_and_bad_transports_with_typed_errors() {
    for (args, expect) in [
        (vec!["concat:/etc/passwd|/etc/hosts"], "refused"),
        (vec!["data:,hello"], "refused"),
        (vec!["/no/such/file.wav"], "not found"),
        (vec!["rtsp://127.0.0.1:9/x", "--transport", "sctp"], "transport"),
        (vec!["clip.wav", "--metadata", "[1,2]"], "metadata"),
    ] {
        let out = Command::new(BIN)
            .arg("stream")
            .args(&args)
            .args(["--channel", "c", "--key", "pk_test", "--url", "ws://127.0.0.1:9"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(err.to_lowercase().contains(expect), "{args:?}: {err}");
    }
}

#[cfg(feature = "sources")]
#[test]
fn devices_lists_ffmpeg_inputs_as_json() {
    let out = Command::new(BIN).args(["devices", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inputs: Vec<&str> = v["ffmpeg_inputs"].as_array().unwrap().iter().filter_map(|x| x.as_str()).collect();
    assert!(inputs.contains(&"lavfi") && inputs.contains(&"x11grab"), "{v}");
    assert!(v["cameras"].is_array() && v["microphones"].is_array(), "{v}");
}
