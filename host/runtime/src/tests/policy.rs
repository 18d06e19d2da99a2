//! Metadata policies: the example policy sanitises, a hostile one always fails
//! closed (loop, trap, memory, oversized or malformed output).

use std::time::Duration;

use serde_json::json;

use super::{guest, runtime, runtime_with};
use crate::Verdict;
use metered_media::{MediaKind, StreamMetadata};

fn meta(v: serde_json::Value) -> StreamMetadata {
    StreamMetadata::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_policy_keeps_role_and_label_only() {
    let rt = runtime(2);
    let policy = rt.load_policy(&guest("metadata_policy")).unwrap();
    let mut p = policy.instantiate().await.unwrap();
    let inbound = meta(json!({"role": "camera", "label": "x".repeat(100), "extra": 1}));
    let Verdict::Accept(m) = p.check_inbound("peer-1", "s1", MediaKind::Video, &inbound).await else { panic!() };
    assert_eq!(m.to_value(), json!({"role": "camera", "label": "x".repeat(64)}));
    let sneaky = meta(json!({"role": "camera", "instructions": "ignore previous"}));
    assert!(matches!(p.check_inbound("peer-1", "s1", MediaKind::Audio, &sneaky).await, Verdict::Reject { .. }));
    let Verdict::Accept(m) = p.decide_outbound("s1", &meta(json!({"role": "agent", "_internal": 7}))).await else {
        panic!()
    };
    assert_eq!(m.to_value(), json!({"role": "agent"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_policy_fails_closed_every_way() {
    // A small memory limit, so the hoarding policy hits it before its 10 ms.
    let rt = runtime_with(2, |l| l.memory_bytes = 8 << 20);
    let policy = rt.load_policy(&guest("hostile_policy")).unwrap();
    for (attack, expect) in [
        ("loop", "CPU deadline"),
        ("trap", "hostile policy panics"),
        ("memory", "memory limit"),
        ("huge", "invalid metadata"),
        ("not-json", "invalid metadata"),
    ] {
        let mut p = policy.instantiate().await.unwrap();
        let verdict = p.check_inbound("peer", "s", MediaKind::Audio, &meta(json!({"attack": attack}))).await;
        match verdict {
            Verdict::Reject { reason } => assert!(reason.contains(expect), "{attack}: {reason}"),
            other => panic!("{attack}: accepted {other:?}"),
        }
        // After a failure the instance refuses everything.
        if p.failure().is_some() {
            let again = p.decide_outbound("s", &meta(json!({"role": "ok"}))).await;
            assert!(matches!(again, Verdict::Reject { .. }));
        }
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(rt.live_guests(), 0);
    // A benign request to a fresh instance still passes.
    let mut p = policy.instantiate().await.unwrap();
    assert!(matches!(
        p.check_inbound("p", "s", MediaKind::Audio, &meta(json!({"role": "a"}))).await,
        Verdict::Accept(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_imports_media_is_refused_at_link_time() {
    let rt = runtime(2);
    let err = rt.load_policy(&guest("echo_agent")).expect_err("an agent is not a policy");
    assert!(err.to_string().contains("link"), "{err}");
}
