//! Devices: the lavfi test pattern through the camera's libavdevice path
//! (this machine has no V4L2: no kernel modules, so no /dev/video*), the
//! screen through Xvfb + x11grab, the microphone through a private
//! PulseAudio via cpal's ALSA default.

use std::time::{Duration, Instant};

use metered_media_fixtures::{PulseMic, Xvfb};
use metered_sources::{SourceOptions, SourcePolicy, Sources, from_device, list_devices};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lavfi_camera_stand_in_delivers_its_pattern_in_real_time() {
    let _lock = LEAK_LOCK.lock().await;
    let policy = SourcePolicy::operator();
    let options = SourceOptions { width: 320, height: 240, fps: 30, ..SourceOptions::default() };
    let graph = "color=c=blue:size=640x480:rate=30,format=yuyv422,realtime";
    from_device(&policy, "lavfi", graph, &options).await.unwrap().stop(); // warm-up
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = resources();
    let player = from_device(&policy, "lavfi", graph, &options).await.unwrap();
    assert!(player.audio.is_none());
    let started = Instant::now();
    let frames = watch(player.video.as_ref().unwrap().track(), 45, BOUND).await;
    let took = started.elapsed();
    assert_eq!(frames.len(), 45);
    assert!(took >= Duration::from_millis(1200), "real time, not {took:?} for 45 frames");
    for f in &frames {
        assert_eq!((f.width, f.height), (320, 240), "scaled to the asked size");
        assert!(near(centre(f), BLUE, 8), "centre {:?}", centre(f));
    }
    player.stop();
    assert_released(baseline, "after stopping the camera").await;

    // testsrc2: a moving pattern — consecutive frames differ.
    let player = from_device(
        &policy,
        "lavfi",
        "testsrc2=size=640x480:rate=30,format=yuyv422,realtime",
        &SourceOptions::default(),
    )
    .await
    .unwrap();
    let frames = watch(player.video.as_ref().unwrap().track(), 10, BOUND).await;
    assert_eq!((frames[0].width, frames[0].height), (640, 480), "native size");
    assert_ne!(frames[0].plane(0), frames[9].plane(0), "the pattern moves");
    player.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_share_captures_the_display_colours() {
    let mut x = Xvfb::start(640, 480).expect("Xvfb starts");
    x.spawn_window(100, 100, 200, 150, "blue").expect("a blue window");
    let sources = Sources::operator();
    let player = sources.screen_share(Some(&x.display()), 0, 0, 15).await.unwrap();
    let frames = watch(player.video.as_ref().unwrap().track(), 10, BOUND).await;
    let f = frames.last().unwrap();
    assert_eq!((f.width, f.height), (640, 480), "0x0 keeps the native size");
    assert!(near(f.yuv_at(20, 20).unwrap(), RED, 10), "root {:?}", f.yuv_at(20, 20));
    assert!(near(f.yuv_at(200, 175).unwrap(), BLUE, 10), "window {:?}", f.yuv_at(200, 175));
    player.stop();
    // A region, scaled.
    let region = format!("{}.0+100,100", x.display());
    let player = sources.screen_share(Some(&region), 100, 74, 15).await.unwrap();
    let frames = watch(player.video.as_ref().unwrap().track(), 5, BOUND).await;
    let f = frames.last().unwrap();
    assert_eq!((f.width, f.height), (100, 74));
    assert!(near(centre(f), BLUE, 10), "region centre {:?}", centre(f));
    player.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_microphone_hears_the_pulse_sine() {
    let mic = PulseMic::start(440.0).expect("pulseaudio starts");
    mic.apply_env();
    let listed = list_devices();
    assert!(listed.ffmpeg_inputs.iter().any(|d| d == "lavfi"), "{listed:?}");
    assert!(listed.ffmpeg_inputs.iter().any(|d| d == "x11grab"), "{listed:?}");
    assert!(!listed.microphones.is_empty(), "the default input is listed: {listed:?}");
    assert!(
        !listed.microphones.iter().any(|m| m == "null" || m.contains("rate") || m.contains("mix")),
        "converters and mixers are not microphones: {:?}",
        listed.microphones
    );
    // Opened by the name the list gives (the default input comes first).
    let player = Sources::operator().from_microphone(Some(&listed.microphones[0])).await.unwrap();
    assert!(player.video.is_none());
    // The open resolves once audio flows: no leading run of silence (ALSA's
    // PulseAudio plugin takes about 2 s to deliver its first period here).
    let heard = hear(player.audio.as_ref().unwrap().track(), 2.0, BOUND).await;
    assert!(heard.samples.len() >= 2 * 48_000);
    let hz = tone(&heard.samples);
    let silent = heard.frame_rms.iter().filter(|r| **r < 0.01).count();
    eprintln!("microphone: {hz:.2} Hz, {silent} silent frames of {}", heard.frame_rms.len());
    assert!((hz - 440.0).abs() < 3.0, "heard {hz} Hz");
    assert!(silent <= 2, "{silent} silent frames of {}: {:?}", heard.frame_rms.len(), &heard.frame_rms[..10]);
    assert!(metered_media_fixtures::rms(&heard.samples) > 0.05, "not silence");
    player.stop();
}
