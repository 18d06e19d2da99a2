//! Hostile guests: each ends only itself, with a typed reason, within its
//! budget; the pool slot and memory come back; a bystander echo agent keeps
//! every frame on schedule meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{guest, rss_bytes, runtime, runtime_with, tone};
use crate::offline::OfflineRoom;
use crate::{AgentExit, AgentSpec, Runtime, RuntimeError};
use metered_audio::PacingTimer;

/// Runs the hostile agent in `mode` (with a room playing a short tone).
async fn hostile(rt: &Runtime, mode: &str) -> AgentExit {
    let agent = rt.load_agent(&guest("hostile_agent")).unwrap();
    let room = Arc::new(OfflineRoom::new(tone(440.0, 0.5, 16_000, 1), PacingTimer::Precise, Duration::from_secs(1)));
    let spec = AgentSpec::new(format!(r#"{{"mode": "{mode}"}}"#)).room(room);
    let started = Instant::now();
    let exit = agent.run(spec).await.unwrap().exit;
    // Loose sanity bound only: the budgets are counted in ticks, not wall time.
    assert!(started.elapsed() < Duration::from_secs(20), "{mode} took {:?}", started.elapsed());
    assert_eq!(rt.live_guests(), 0, "{mode}: the store must be gone");
    exit
}

const BUDGET: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_in_run_hits_the_cpu_deadline() {
    assert_eq!(hostile(&runtime(2), "loop-run").await, AgentExit::Deadline { budget: BUDGET });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_in_an_event_handler_hits_the_cpu_deadline() {
    assert_eq!(hostile(&runtime(2), "loop-event").await, AgentExit::Deadline { budget: BUDGET });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_memory_growth_hits_the_memory_limit_and_memory_returns() {
    // 32 MiB rather than 128: the guest fills what it allocates, and filling
    // 128 MiB can take longer than its CPU budget on a loaded machine.
    let rt = runtime_with(2, |l| l.memory_bytes = 32 << 20);
    let _ = hostile(&rt, "loop-run").await; // warm the pool and the code
    let before = rss_bytes();
    match hostile(&rt, "memory").await {
        AgentExit::MemoryLimit { requested, limit } => {
            assert_eq!(limit, 32 << 20);
            assert!(requested > limit);
        }
        other => panic!("{other:?}"),
    }
    let after = rss_bytes();
    // Loose: the 128 MiB the guest touched is decommitted with its slot.
    assert!(after < before + (16 << 20), "RSS {before} → {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_overflow_is_reported_as_such() {
    assert_eq!(hostile(&runtime(2), "stack").await, AgentExit::StackOverflow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_carrying_the_panic_message() {
    match hostile(&runtime(2), "panic").await {
        AgentExit::Trap { message } => assert!(message.contains("hostile agent panics on purpose"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_is_a_trap() {
    match hostile(&runtime(2), "trap").await {
        AgentExit::Trap { message } => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_flood_is_refused_then_ended() {
    // A lower call cap than the default 10 000, so the flood reaches it well
    // inside its CPU budget even in a debug build on a loaded machine.
    let rt = runtime_with(2, |l| l.calls_per_event = 1_000);
    assert_eq!(hostile(&rt, "push-flood").await, AgentExit::CallFlood { calls: 1_000 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_pushing_is_held_by_backpressure_not_buffered() {
    let rt = runtime(2);
    let agent = rt.load_agent(&guest("hostile_agent")).unwrap();
    let handle = agent.spawn(AgentSpec::new(r#"{"mode": "push-backpressure"}"#)).await.unwrap();
    // The guest checks `buffered-seconds` after every push and fails above the
    // 10 s cap; blocked at the cap it neither fails nor spins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.stop();
    assert_eq!(handle.join().await.exit, AgentExit::Stopped);
    assert_eq!(rt.live_guests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_pollables_hit_the_resource_cap() {
    match hostile(&runtime(2), "pollable-flood").await {
        AgentExit::ResourceLimit { what } => assert!(what.contains("pollables"), "{what}"),
        other => panic!("expected a resource limit, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_reaches_no_socket_file_or_environment() {
    // A listener the guest is told to reach, by TCP and UDP.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    tcp.set_nonblocking(true).unwrap();
    udp.set_nonblocking(true).unwrap();
    let rt = runtime(2);
    let agent = rt.load_agent(&guest("hostile_agent")).unwrap();
    let spec = AgentSpec::new(format!(r#"{{"mode": "escape", "port": {port}}}"#));
    let message = match agent.spawn(spec).await.unwrap().join().await.exit {
        AgentExit::Failed { message } => message,
        other => panic!("{other:?}"),
    };
    eprintln!("{message}");
    for attempt in ["tcp: Err", "udp: Err", "dns: Err", "file: Err", "env: 0"] {
        assert!(message.contains(attempt), "{attempt} expected in: {message}");
    }
    assert!(tcp.accept().is_err(), "the guest connected to a loopback listener");
    assert!(udp.recv_from(&mut [0u8; 16]).is_err(), "the guest sent a UDP packet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_metadata_is_refused_with_limit_exceeded() {
    match hostile(&runtime(2), "metadata").await {
        AgentExit::Failed { message } => assert!(message.contains("LimitExceeded"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_handle_is_a_trap() {
    match hostile(&runtime(2), "handle-dropped").await {
        AgentExit::Trap { message } => assert!(message.contains("handle"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_handle_is_a_trap() {
    match hostile(&runtime(2), "handle-foreign").await {
        AgentExit::Trap { message } => assert!(message.contains("handle"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_slots_come_back_after_hostile_agents() {
    let rt = runtime(2);
    for mode in ["loop-run", "panic", "stack", "trap"] {
        let _ = hostile(&rt, mode).await;
    }
    // Exactly `max_agents` × 2 slots (agents and their policies): all free again.
    let agent = rt.load_agent(&guest("hostile_agent")).unwrap();
    let mut live = Vec::new();
    for _ in 0..4 {
        live.push(agent.instantiate(AgentSpec::new("{}")).await.expect("a free slot"));
    }
    let err = agent.instantiate(AgentSpec::new("{}")).await.expect_err("the pool is full");
    assert!(matches!(err, RuntimeError::Instantiate(_)), "{err}");
    drop(live);
    assert_eq!(rt.live_guests(), 0);
    agent.instantiate(AgentSpec::new("{}")).await.expect("slots are back");
}

/// Every hostile guest at once, next to an echo agent on the real clock: the
/// echo must come back sample-exact with no inserted silence, i.e. every one of
/// its frames met the pacer's schedule while the others spun, trapped and
/// flooded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bystander_keeps_its_schedule_while_hostile_guests_run() {
    let rt = runtime(16);
    let echo = rt.load_agent(&guest("echo_agent")).unwrap();
    let input = tone(1000.0, 3.0, 48_000, 2);
    let room = Arc::new(OfflineRoom::new(input.clone(), PacingTimer::Precise, Duration::from_secs(4)));
    let bystander = echo.spawn(AgentSpec::new("{}").room(room.clone())).await.unwrap();

    tokio::time::sleep(Duration::from_millis(300)).await;
    let modes = ["loop-run", "loop-event", "memory", "stack", "panic", "trap", "push-flood", "handle-dropped"];
    let hostile = rt.load_agent(&guest("hostile_agent")).unwrap();
    let mut handles = Vec::new();
    for round in 0..3 {
        for mode in modes {
            let room = Arc::new(OfflineRoom::new(tone(440.0, 0.2, 16_000, 1), PacingTimer::Precise, Duration::ZERO));
            let spec = AgentSpec::new(format!(r#"{{"mode": "{mode}"}}"#)).room(room);
            handles.push((round, mode, hostile.spawn(spec).await.unwrap()));
        }
        for (round, mode, h) in handles.drain(..) {
            let exit = h.join().await.exit;
            assert!(!matches!(exit, AgentExit::Finished | AgentExit::Stopped), "round {round} {mode}: {exit:?}");
        }
    }

    assert_eq!(bystander.join().await.exit, AgentExit::Finished);
    let got = &room.recordings().await[0].pcm.samples;
    let first = |x: &[i16]| x.iter().position(|&s| s != 0).expect("some audio");
    let delay = first(got) - first(&input.samples);
    assert_eq!(delay % (960 * 2), 0, "echo delayed by {delay} samples");
    let end = (delay + input.samples.len()).min(got.len());
    let mismatch = got[delay..end].iter().zip(&input.samples).position(|(a, b)| a != b);
    assert_eq!(mismatch, None, "the bystander's echo has a gap (a missed frame deadline)");
    assert_eq!(end - delay, input.samples.len(), "the echo was cut short");
    assert_eq!(rt.live_guests(), 0);
}
