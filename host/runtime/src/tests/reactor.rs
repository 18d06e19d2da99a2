//! The `reactor` world: the host drives `handler` per event and frame. The
//! echo reactor echoes sample-exact; misbehaving reactors end alone with a
//! typed reason, as `run` agents do.

use std::sync::Arc;
use std::time::Duration;

use super::{guest, left_trimmed, runtime, tone};
use crate::offline::{OfflineOptions, OfflineRoom, run_offline};
use crate::{AgentExit, AgentSpec, Runtime};
use metered_audio::PacingTimer;

const BUDGET: Duration = Duration::from_millis(100);

/// Runs the hostile reactor in `mode` against a room playing 0.5 s of tone
/// (25 frames), on virtual time.
async fn reactor(rt: &Runtime, mode: &str) -> AgentExit {
    let agent = rt.load_agent(&guest("hostile_reactor")).unwrap();
    let room = Arc::new(OfflineRoom::new(tone(440.0, 0.5, 16_000, 1), PacingTimer::Tokio, Duration::from_secs(1)));
    let mut spec = AgentSpec::new(format!(r#"{{"mode": "{mode}"}}"#)).room(room);
    spec.pacing = PacingTimer::Tokio;
    let exit = agent.run(spec).await.unwrap().exit;
    assert_eq!(rt.live_guests(), 0, "{mode}: the store must be gone");
    exit
}

#[tokio::test(start_paused = true)]
async fn every_frame_is_delivered_then_the_end_of_the_track() {
    // 0.5 s of input is 25 frames; `on-track-ended` reports how many came.
    match reactor(&runtime(2), "count").await {
        AgentExit::Failed { message } => assert_eq!(message, "track ended after 25 frames"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn finish_ends_the_agent_without_further_calls() {
    assert_eq!(reactor(&runtime(2), "finish-after-10").await, AgentExit::Finished);
}

#[tokio::test(start_paused = true)]
async fn nothing_to_deliver_is_finished() {
    assert_eq!(reactor(&runtime(2), "nothing").await, AgentExit::Finished);
}

#[tokio::test(start_paused = true)]
async fn an_error_from_start_fails_the_agent() {
    assert_eq!(reactor(&runtime(2), "fail-start").await, AgentExit::Failed { message: "refusing to start".into() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_in_start_or_in_a_frame_handler_hits_the_cpu_deadline() {
    for mode in ["loop-start", "loop-frame"] {
        let agent = runtime(2);
        let hostile = agent.load_agent(&guest("hostile_reactor")).unwrap();
        let room =
            Arc::new(OfflineRoom::new(tone(440.0, 0.5, 16_000, 1), PacingTimer::Precise, Duration::from_secs(1)));
        let exit = hostile.run(AgentSpec::new(format!(r#"{{"mode": "{mode}"}}"#)).room(room)).await.unwrap().exit;
        assert_eq!(exit, AgentExit::Deadline { budget: BUDGET }, "{mode}");
        assert_eq!(agent.live_guests(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_frame_handler_is_a_trap_with_its_message() {
    match reactor(&runtime(2), "panic-frame").await {
        AgentExit::Trap { message } => assert!(message.contains("panics on frame 1"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_echo_reactor_returns_its_input_sample_exact_like_the_blocking_echo() {
    let rt = runtime(4);
    let mut outputs = Vec::new();
    for name in ["echo_agent", "echo_reactor_agent"] {
        let echo = rt.load_agent(&guest(name)).unwrap();
        let out = run_offline(&echo, tone(300.0, 0.5, 16_000, 1), OfflineOptions::default()).await.unwrap();
        assert_eq!(out.exit, AgentExit::Finished, "{name}");
        outputs.push(left_trimmed(&out.recordings[0].pcm.samples));
    }
    assert!(outputs[0].len() > 20_000, "{} samples echoed", outputs[0].len());
    assert_eq!(outputs[0], outputs[1], "the reactor and the blocking echo differ");
}
