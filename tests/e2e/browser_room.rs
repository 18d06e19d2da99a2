//! The room page served by `metered serve`, on the official browser SDK, in two
//! headless Chromium pages: they join one channel, find each other through
//! presence, negotiate WebRTC over our signalling, and hear each other's fake
//! microphone tone (measured in the page with a WebAudio analyser).

use std::process::Stdio;
use std::time::Duration;

use e2e_support::{TestServer, repo_root};
use serde_json::Value;

#[tokio::test]
async fn two_browser_pages_hear_each_other_through_metered_serve() {
    let sdk = repo_root().join(".local/node/node_modules/@metered-ca/realtime/dist/index.mjs");
    assert!(sdk.exists(), "run scripts/setup: the browser SDK is missing");
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "run scripts/setup: chromium is missing");
    let server = TestServer::start_with(|c| c.web.browser_sdk = Some(sdk)).await;
    let base = server.http_url();
    let child = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/browser/room_two_pages.mjs"))
        .args([&base, "browser-room"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("browser test timed out")
        .expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "node failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Vec<Value> = serde_json::from_str(stdout.lines().last().unwrap_or("[]")).expect("JSON report");
    assert_eq!(report.len(), 2);
    let ids: Vec<&str> = report.iter().map(|r| r["peerId"].as_str().unwrap()).collect();
    for (i, r) in report.iter().enumerate() {
        assert_eq!(r["peers"], serde_json::json!([ids[1 - i]]), "each page lists the other peer");
        let hz = r["hz"].as_f64().unwrap();
        // Chromium's fake microphone is a ~400 Hz beep.
        assert!((300.0..500.0).contains(&hz), "page {i} heard {hz} Hz");
        assert!(r["rms"].as_f64().unwrap() > 0.01);
        assert_eq!(r["errors"], serde_json::json!([]));
    }
    server.shutdown().await;
}
