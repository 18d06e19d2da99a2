//! The offline harness with the Rust echo and tone agents: a tone in, the same
//! tone out (frequency measured), identical output on every run.

use std::time::Duration;

use super::{guest, left_trimmed, runtime, tone};
use crate::offline::{OfflineOptions, read_wav, run_offline, write_wav};
use crate::{AgentExit, AgentSpec};
use metered_audio::analysis::{rms_dbfs, tone_frequency};

#[tokio::test(start_paused = true)]
async fn echo_returns_the_tone_and_the_output_is_identical_across_runs() {
    let rt = runtime(4);
    let echo = rt.load_agent(&guest("echo_agent")).unwrap();
    let input = tone(440.0, 2.0, 16_000, 1);
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let out = run_offline(&echo, input.clone(), OfflineOptions::default()).await.unwrap();
        assert_eq!(out.exit, AgentExit::Finished);
        assert_eq!(out.recordings.len(), 1, "the echo agent publishes one track");
        let rec = &out.recordings[0];
        assert_eq!(rec.stream_id, "echo");
        assert_eq!(rec.metadata.role(), Some("echo"));
        outputs.push(rec.pcm.clone());
    }
    assert_eq!(outputs[0], outputs[1], "offline output must be identical across runs");
    let y = left_trimmed(&outputs[0].samples);
    let seconds = y.len() as f64 / 48_000.0;
    assert!((seconds - 2.0).abs() < 0.05, "echoed {seconds} s of a 2 s tone");
    let f = tone_frequency(&y, 48_000.0);
    assert!((f - 440.0).abs() < 1.0, "echoed tone at {f} Hz");
    assert!((rms_dbfs(&y) - (-9.03)).abs() < 0.2, "level {} dBFS", rms_dbfs(&y));
    // The WAV round trip the CLI uses.
    assert_eq!(read_wav(&write_wav(&outputs[0])).unwrap(), outputs[0]);
    assert_eq!(rt.live_guests(), 0);
}

#[tokio::test(start_paused = true)]
async fn echo_is_sample_exact_at_48k_stereo() {
    let rt = runtime(4);
    let echo = rt.load_agent(&guest("echo_agent")).unwrap();
    let input = tone(1000.0, 1.0, 48_000, 2);
    let out = run_offline(&echo, input.clone(), OfflineOptions::default()).await.unwrap();
    let got = &out.recordings[0].pcm.samples;
    let first = |x: &[i16]| x.iter().position(|&s| s != 0).expect("some audio");
    let delay = first(got) - first(&input.samples);
    // Delayed by whole 20 ms frames, then the input sample for sample, no gap.
    assert_eq!(delay % (960 * 2), 0, "echo delayed by {delay} samples");
    assert_eq!(&got[delay..delay + input.samples.len()], &input.samples[..], "echo differs from the input");
}

#[tokio::test(start_paused = true)]
async fn tone_agent_plays_its_configured_tone() {
    let rt = runtime(4);
    let agent = rt.load_agent(&guest("tone_agent")).unwrap();
    let opts = OfflineOptions { config: r#"{"frequency": 660, "seconds": 1.0}"#.into(), ..Default::default() };
    let out = run_offline(&agent, tone(0.0, 0.5, 16_000, 1), opts).await.unwrap();
    assert_eq!(out.exit, AgentExit::Finished);
    let y = left_trimmed(&out.recordings[0].pcm.samples);
    assert!((y.len() as f64 / 48_000.0 - 1.0).abs() < 0.03, "{} samples", y.len());
    let f = tone_frequency(&y, 48_000.0);
    assert!((f - 660.0).abs() < 1.0, "tone at {f} Hz");
    assert_eq!(out.recordings[0].metadata.role(), Some("speech"));
}

#[tokio::test(start_paused = true)]
async fn an_agent_without_a_room_fails_with_the_hosts_reason() {
    let rt = runtime(2);
    let echo = rt.load_agent(&guest("echo_agent")).unwrap();
    let report = echo.run(AgentSpec::new("{}")).await.unwrap();
    match report.exit {
        AgentExit::Failed { message } => assert!(message.contains("Unsupported"), "{message}"),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(rt.live_guests(), 0);
}

#[test]
fn run_offline_file_writes_the_echo() {
    let dir = std::env::temp_dir().join(format!("metered-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (agent, input, output) = (dir.join("echo.wasm"), dir.join("in.wav"), dir.join("out.wav"));
    std::fs::write(&agent, guest("echo_agent")).unwrap();
    std::fs::write(&input, write_wav(&tone(300.0, 0.5, 16_000, 1))).unwrap();
    let out = crate::offline::run_offline_file(
        &agent,
        &input,
        &output,
        OfflineOptions::default(),
        crate::RuntimeConfig { max_agents: 4, ..Default::default() },
    )
    .unwrap();
    assert_eq!(out.exit, AgentExit::Finished);
    let out = read_wav(&std::fs::read(&output).unwrap()).unwrap();
    assert_eq!((out.sample_rate, out.channels), (48_000, 2));
    let f = tone_frequency(&left_trimmed(&out.samples), 48_000.0);
    assert!((f - 300.0).abs() < 2.0, "{f} Hz");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn the_disk_cache_serves_a_second_runtime_and_survives_corruption() {
    use crate::{CacheConfig, Runtime, RuntimeConfig};
    let dir = std::env::temp_dir().join(format!("metered-cache-{}", std::process::id()));
    let config = || RuntimeConfig { max_agents: 2, cache: CacheConfig::Dir(dir.clone()), ..RuntimeConfig::default() };
    let bytes = guest("echo_agent");
    Runtime::new(config()).unwrap().load_agent(&bytes).unwrap();
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(entries.len(), 1, "one artifact: {entries:?}");
    // A second runtime loads the artifact and the agent runs.
    let echo = Runtime::new(config()).unwrap().load_agent(&bytes).unwrap();
    let out = run_offline(&echo, tone(440.0, 0.2, 16_000, 1), OfflineOptions::default()).await.unwrap();
    assert_eq!(out.exit, AgentExit::Finished);
    // A corrupted artifact is refused (checksum) and recompiled, not loaded.
    let mut art = std::fs::read(&entries[0]).unwrap();
    let last = art.len() - 1;
    art[last] ^= 0xff;
    std::fs::write(&entries[0], &art).unwrap();
    let echo = Runtime::new(config()).unwrap().load_agent(&bytes).unwrap();
    let out = run_offline(&echo, tone(440.0, 0.2, 16_000, 1), OfflineOptions::default()).await.unwrap();
    assert_eq!(out.exit, AgentExit::Finished);
    let _ = std::fs::remove_dir_all(&dir);
}
