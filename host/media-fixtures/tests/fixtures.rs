//! Each fixture really works, checked with the CLI tools only (ffprobe, ffmpeg,
//! parec). Every wait is bounded by the fixtures themselves.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use metered_media_fixtures::{
    Container, MediaSpec, PulseMic, RtspServer, StalledServer, Xvfb, dominant_frequency, ffprobe, make_file, rms,
    run_with_timeout, truncated_copy, wait_until, write_bytes,
};

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mf-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Decodes `seconds` of the first audio stream of `input` to mono f32 at 48 kHz.
fn decode_audio(input: &str, extra: &[&str], seconds: f64) -> Vec<f32> {
    let out = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error"])
            .args(extra)
            .args(["-i", input, "-map", "0:a:0", "-t", &seconds.to_string()])
            .args(["-ac", "1", "-ar", "48000", "-f", "f32le", "-"]),
        Duration::from_secs(30),
    )
    .expect("ffmpeg audio decode");
    assert!(out.status.success(), "decode {input}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The average colour of the first video frame of `input`.
fn first_frame_colour(input: &str, extra: &[&str]) -> (u8, u8, u8) {
    let out = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error"])
            .args(extra)
            .args(["-i", input, "-map", "0:v:0", "-frames:v", "1", "-vf", "scale=1:1"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
        Duration::from_secs(30),
    )
    .expect("ffmpeg video decode");
    assert!(out.status.success(), "decode {input}: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), 3, "one rgb24 pixel");
    (out.stdout[0], out.stdout[1], out.stdout[2])
}

fn near(c: (u8, u8, u8), want: (u8, u8, u8), tol: i32) -> bool {
    let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).abs() <= tol;
    d(c.0, want.0) && d(c.1, want.1) && d(c.2, want.2)
}

fn assert_tone(samples: &[f32], hz: f64, what: &str) {
    let level = rms(samples);
    assert!(level > 0.05, "{what}: too quiet (rms {level})");
    let f = dominant_frequency(samples, 48_000);
    assert!((f - hz).abs() <= 2.0, "{what}: dominant frequency {f} Hz, wanted {hz}");
}

#[test]
fn every_container_probes_with_its_streams_duration_colour_and_tone() {
    let dir = TempDir::new("files");
    let spec = MediaSpec::default();
    for c in Container::ALL {
        let path = make_file(&dir.0, c, &spec).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert_eq!(path.extension().unwrap(), c.extension());
        let p = path.to_str().unwrap();
        let probe = ffprobe(p, &[]).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        let (video, audio) = c.codec_names();
        assert_eq!(probe.streams.len(), if c.has_video() { 2 } else { 1 }, "{c:?}: {probe:?}");
        let a = probe.stream("audio").unwrap_or_else(|| panic!("{c:?}: no audio: {probe:?}"));
        assert_eq!(a.codec_name, audio, "{c:?}");
        assert_eq!(a.channels, Some(2), "{c:?}");
        assert_eq!(a.sample_rate, Some(48_000), "{c:?}");
        match video {
            Some(v) => {
                let s = probe.stream("video").unwrap_or_else(|| panic!("{c:?}: no video"));
                assert_eq!(s.codec_name, v, "{c:?}");
                assert_eq!((s.width, s.height), (Some(spec.width), Some(spec.height)), "{c:?}");
                let colour = first_frame_colour(p, &[]);
                assert!(near(colour, spec.color, 12), "{c:?}: colour {colour:?}");
            }
            None => assert!(probe.stream("video").is_none(), "{c:?}"),
        }
        let d = probe.duration.unwrap_or_else(|| panic!("{c:?}: no duration"));
        assert!((d - spec.seconds).abs() < 0.15, "{c:?}: duration {d}");
        // Skip the codec's start-up (AAC priming, Opus pre-skip) before measuring.
        let tone = decode_audio(p, &["-ss", "0.2"], 1.0);
        assert!(tone.len() > 40_000, "{c:?}: {} samples", tone.len());
        assert_tone(&tone, spec.tone_hz, &format!("{c:?}"));
    }

    // Another spec: colour, size and tone follow it.
    let other = MediaSpec {
        seconds: 1.0,
        width: 160,
        height: 120,
        fps: 15,
        tone_hz: 1000.0,
        color: (0, 0, 255),
        keyframe_interval: 0,
    };
    let path = make_file(&dir.0, Container::WebmVp8Opus, &other).unwrap();
    let p = path.to_str().unwrap();
    let probe = ffprobe(p, &[]).unwrap();
    assert_eq!(probe.stream("video").unwrap().width, Some(160));
    assert!(near(first_frame_colour(p, &[]), (0, 0, 255), 12));
    assert_tone(&decode_audio(p, &["-ss", "0.1"], 0.8), 1000.0, "1 kHz webm");

    assert!(make_file(&dir.0, Container::Wav, &MediaSpec { seconds: 0.0, ..MediaSpec::default() }).is_err());
}

#[test]
fn byte_helpers_write_and_truncate() {
    let dir = TempDir::new("bytes");
    let junk = write_bytes(&dir.0, "junk.mp4", b"not a movie at all");
    assert_eq!(std::fs::read(&junk).unwrap(), b"not a movie at all");
    assert!(ffprobe(junk.to_str().unwrap(), &[]).is_err(), "garbage must not probe");

    let src = make_file(&dir.0, Container::Mp4H264Aac, &MediaSpec::default()).unwrap();
    let len = std::fs::metadata(&src).unwrap().len() as usize;
    let dst = truncated_copy(&src, &dir.0.join("cut.mp4"), len / 3).unwrap();
    assert_eq!(std::fs::metadata(&dst).unwrap().len() as usize, len / 3);
    assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&src).unwrap()[..len / 3]);
    assert!(truncated_copy(Path::new("/nonexistent/x"), &dir.0.join("y"), 1).is_err());
}

#[test]
fn rtsp_server_serves_h264_and_opus_over_tcp_and_udp_and_restarts_on_its_port() {
    let spec = MediaSpec::default();
    let mut server = RtspServer::start(&spec).expect("start RTSP server");
    let url = server.url();
    let port = server.port();
    assert_eq!(url, format!("rtsp://127.0.0.1:{port}/stream"));

    for transport in ["tcp", "udp"] {
        let probe = ffprobe(&url, &["-rtsp_transport", transport]).unwrap_or_else(|e| panic!("{transport}: {e}"));
        let v = probe.stream("video").unwrap_or_else(|| panic!("{transport}: no video: {probe:?}"));
        assert_eq!(v.codec_name, "h264");
        assert_eq!((v.width, v.height), (Some(spec.width), Some(spec.height)));
        let a = probe.stream("audio").unwrap_or_else(|| panic!("{transport}: no audio: {probe:?}"));
        assert_eq!(a.codec_name, "opus");
        assert_eq!(a.sample_rate, Some(48_000));
    }
    let tcp = ["-rtsp_transport", "tcp"];
    assert!(near(first_frame_colour(&url, &tcp), spec.color, 12), "RTSP colour");
    assert_tone(&decode_audio(&url, &tcp, 1.0), spec.tone_hz, "RTSP audio");

    // A client holds a connection while the server dies (server-side TIME_WAIT).
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let held = TcpStream::connect(addr).expect("connect");
    server.kill();
    assert!(!server.is_running());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "killed server still accepts");
    drop(held);

    let t = Instant::now();
    server.restart().expect("restart");
    eprintln!("restart took {:?}", t.elapsed());
    assert_eq!(server.port(), port);
    assert_eq!(server.url(), url);
    let probe = ffprobe(&url, &tcp).expect("probe after restart");
    assert_eq!(probe.stream("video").map(|s| s.codec_name.as_str()), Some("h264"));
    assert_eq!(probe.stream("audio").map(|s| s.codec_name.as_str()), Some("opus"));

    // Restart while running works too (kills first).
    server.restart().expect("restart while running");
    assert!(ffprobe(&url, &tcp).is_ok());
    drop(server);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "dropped server still accepts");
}

#[test]
fn two_rtsp_servers_run_side_by_side() {
    let a = RtspServer::start(&MediaSpec::default()).unwrap();
    let b = RtspServer::start(&MediaSpec { color: (0, 255, 0), tone_hz: 660.0, ..MediaSpec::default() }).unwrap();
    assert_ne!(a.port(), b.port());
    let tcp = ["-rtsp_transport", "tcp"];
    assert!(near(first_frame_colour(&b.url(), &tcp), (0, 255, 0), 12));
    assert_tone(&decode_audio(&b.url(), &tcp, 1.0), 660.0, "second server");
    assert!(ffprobe(&a.url(), &tcp).is_ok());
}

#[test]
fn stalled_server_accepts_and_never_sends() {
    let server = StalledServer::start().unwrap();
    let port = server.port();
    assert_eq!(server.url("rtsp"), format!("rtsp://127.0.0.1:{port}/stream"));
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || server.accepted() == 1));
    client.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut buf = [0u8; 64];
    match client.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("stalled server answered: {other:?}"),
    }

    // An RTSP client gets nowhere (bounded by ffprobe's own socket timeout).
    let t = Instant::now();
    let out = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-rtsp_transport", "tcp", "-timeout", "1000000"])
            .arg(server.url("rtsp")),
        Duration::from_secs(20),
    );
    match out {
        Ok(o) => assert!(!o.status.success(), "ffprobe succeeded on a stalled server"),
        Err(e) => assert!(e.contains("timed out"), "{e}"),
    }
    eprintln!("ffprobe on stalled server gave up after {:?}", t.elapsed());
    assert!(server.accepted() >= 2);

    drop(server);
    client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    match client.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("socket not closed on drop: {other:?}"),
    }
    assert!(TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(1)).is_err());
}

#[test]
fn xvfb_root_is_red_and_windows_are_solid_at_their_geometry() {
    let mut x = Xvfb::start(320, 240).expect("start Xvfb");
    let display = x.display();
    assert!(display.starts_with(':'));
    let n: u32 = display[1..].parse().unwrap();
    assert!(n >= 90);
    assert_eq!(x.pixel(0, 0).unwrap(), (255, 0, 0));
    assert_eq!(x.pixel(319, 239).unwrap(), (255, 0, 0));

    x.spawn_window(50, 40, 100, 80, "blue").expect("blue window");
    x.spawn_window(200, 150, 60, 50, "#00ff00").expect("green window");
    let region = x.capture(50, 40, 100, 80).unwrap();
    assert!(region.chunks_exact(3).all(|p| p == [0, 0, 255]), "blue window not solid");
    for (px, py) in [(49, 40), (50, 39), (150, 40), (50, 120), (149, 120), (150, 119)] {
        assert_eq!(x.pixel(px, py).unwrap(), (255, 0, 0), "outside the window at {px},{py}");
    }
    for (px, py) in [(50, 40), (149, 119), (100, 80)] {
        assert_eq!(x.pixel(px, py).unwrap(), (0, 0, 255), "inside the window at {px},{py}");
    }
    let green = x.capture(200, 150, 60, 50).unwrap();
    assert!(green.chunks_exact(3).all(|p| p == [0, 255, 0]), "green window not solid");
    assert_eq!(x.pixel(199, 150).unwrap(), (255, 0, 0));

    // A second screen at the same time gets another display.
    let y = Xvfb::start(64, 48).unwrap();
    assert_ne!(y.display(), display);
    assert_eq!(y.pixel(10, 10).unwrap(), (255, 0, 0));
    drop(y);

    drop(x);
    assert!(!Path::new(&format!("/tmp/.X{n}-lock")).exists(), "lock file left behind");
    assert!(!Path::new(&format!("/tmp/.X11-unix/X{n}")).exists(), "socket left behind");
}

#[test]
fn pulse_mic_records_its_tone_through_pulse_and_alsa_default() {
    let mic = PulseMic::start(440.0).expect("start PulseMic");
    let dir = mic.dir().to_path_buf();
    assert!(mic.socket().exists());
    let env = mic.env();
    assert!(env.iter().any(|(k, v)| k == "PULSE_SERVER" && v == &format!("unix:{}", mic.socket().display())));

    let t = Instant::now();
    let samples = mic.capture(1.0).expect("parec capture");
    eprintln!("parec: 1 s captured in {:?}", t.elapsed());
    assert_eq!(samples.len(), 48_000);
    assert_tone(&samples[4800..], 440.0, "parec");

    // ALSA `default` (what cpal opens) reaches the same source through the pulse plugin.
    let t = Instant::now();
    let out = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-f", "alsa", "-i", "default", "-t", "1"])
            .args(["-ac", "1", "-ar", "48000", "-f", "f32le", "-"])
            .envs(env),
        Duration::from_secs(20),
    )
    .expect("ffmpeg -f alsa");
    assert!(out.status.success(), "alsa capture: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("alsa default: 1 s captured in {:?}", t.elapsed());
    let alsa: Vec<f32> = out.stdout.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert!(alsa.len() >= 47_000, "{} samples", alsa.len());
    assert_tone(&alsa[4800..], 440.0, "alsa default");

    drop(mic);
    assert!(!dir.exists(), "private dir left behind");
}
