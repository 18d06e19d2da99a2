//! Hostile source strings and hostile files: each a typed error naming what
//! refused it, before any I/O where the string alone decides, and nothing
//! leaked.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use metered_media_fixtures::{Container, MediaSpec, make_file, truncated_copy, write_bytes};
use metered_sources::{
    DeviceProblem, PSEUDO_PROTOCOLS, RtspTransport, Rule, SourceError, SourceOptions, SourcePolicy, Sources,
};

use crate::support::*;

fn rule_of(e: &SourceError) -> &Rule {
    match e {
        SourceError::Refused { rule, .. } => rule,
        other => panic!("expected a refusal naming a rule, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudo_protocols_are_refused_by_name_under_every_policy() {
    let _lock = LEAK_LOCK.lock().await;
    let baseline = resources();
    let tenant = Sources::new(SourcePolicy::strict());
    let operator = Sources::operator();
    for proto in PSEUDO_PROTOCOLS {
        let s = format!("{proto}:/etc/passwd");
        for sources in [&tenant, &operator] {
            let e = sources.from_file(&s, false).await.unwrap_err();
            assert_eq!(rule_of(&e), &Rule::Scheme(proto.to_owned()), "{s}");
            // Opened by string: no kind claims it, and the refusal names why.
            let e = sources.open_str(&s, &SourceOptions::default()).await.unwrap_err();
            assert_eq!(rule_of(&e), &Rule::Scheme(proto.to_owned()), "{s}");
        }
    }
    for s in
        ["concat:/etc/passwd|/etc/hosts", "subfile:,,start,0,end,100,,:/etc/passwd", "data:,hello", "fd:0", "pipe:0"]
    {
        let e = operator.from_file(s, false).await.unwrap_err();
        assert!(matches!(rule_of(&e), Rule::Scheme(_)), "{s}: {e}");
        assert!(e.to_string().contains("refused"), "{e}");
    }
    assert_released(baseline, "after refusals").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playlist_cannot_reach_file_even_inside_an_allowed_path_or_url() {
    let dir = Scratch::new("playlist");
    let media = make_file(&dir.0, Container::Wav, &MediaSpec::default()).unwrap();
    let playlist = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile:{}\n#EXTINF:2,\nfile:/etc/passwd\n#EXT-X-ENDLIST\n",
        media.display()
    );
    let m3u8 = write_bytes(&dir.0, "list.m3u8", playlist.as_bytes());
    let ffconcat =
        write_bytes(&dir.0, "list.ffconcat", format!("ffconcat version 1.0\nfile '{}'\n", media.display()).as_bytes());
    let sources = Sources::new(SourcePolicy::strict().with_root(&dir.0).unwrap());
    for f in [&m3u8, &ffconcat] {
        let e = sources.from_file(f.to_str().unwrap(), false).await.unwrap_err();
        assert_eq!(rule_of(&e), &Rule::NotWhitelisted, "{}: {e}", f.display());
    }
    // The same playlist served over http from an allowed address.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = playlist.clone();
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        // Serve a few requests (FFmpeg may probe more than once), then stop.
        for _ in 0..4 {
            let Ok((mut s, _)) = listener.accept() else { break };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.apple.mpegurl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                body
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/list.m3u8");
    let e = Sources::operator().from_file(&url, false).await.unwrap_err();
    assert_eq!(rule_of(&e), &Rule::NotWhitelisted, "{url}: {e}");
    // Unblock the server thread.
    for _ in 0..4 {
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    }
    server.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_judged_by_the_address_they_resolve_to() {
    // A tenant allowed rtsp and http to `localhost` by name still cannot
    // reach loopback: the check is on the resolved address.
    let tenant = Sources::new(
        SourcePolicy::strict()
            .allow_scheme("rtsp")
            .unwrap()
            .allow_scheme("http")
            .unwrap()
            .allow_host("localhost")
            .allow_host("127.0.0.1")
            .allow_host("cams.example"),
    );
    let stalled = metered_media_fixtures::StalledServer::start().unwrap();
    for s in [
        format!("rtsp://localhost:{}/cam", stalled.port()),
        format!("rtsp://127.0.0.1:{}/cam", stalled.port()),
        format!("http://localhost:{}/a.mp4", stalled.port()),
    ] {
        let e = if s.starts_with("rtsp") {
            tenant.from_rtsp(&s, RtspTransport::Tcp).await.unwrap_err()
        } else {
            tenant.from_file(&s, false).await.unwrap_err()
        };
        match rule_of(&e) {
            Rule::InternalAddress { address, .. } => assert!(address.is_loopback(), "{s}: {address}"),
            other => panic!("{s}: {other:?}"),
        }
    }
    let e = tenant.from_rtsp("rtsp://elsewhere.example/cam", RtspTransport::Tcp).await.unwrap_err();
    assert_eq!(rule_of(&e), &Rule::HostNotAllowed("elsewhere.example".into()));
    let e = tenant.from_file("https://cams.example/a.mp4", false).await.unwrap_err();
    assert_eq!(rule_of(&e), &Rule::SchemeNotAllowed("https".into()));
    let e = Sources::new(SourcePolicy::strict()).from_file("clip.mp4", false).await.unwrap_err();
    assert_eq!(rule_of(&e), &Rule::FilesNotAllowed);
    let e = Sources::new(SourcePolicy::strict()).from_camera(None, 640, 480, 30).await.unwrap_err();
    assert_eq!(rule_of(&e), &Rule::DevicesNotAllowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_stay_under_their_roots() {
    let dir = Scratch::new("roots");
    let root = dir.0.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let inside = make_file(&root, Container::Wav, &MediaSpec { seconds: 0.5, ..MediaSpec::default() }).unwrap();
    let outside = make_file(&dir.0, Container::Flac, &MediaSpec { seconds: 0.5, ..MediaSpec::default() }).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link.flac")).unwrap();
    let sources = Sources::new(SourcePolicy::strict().with_root(&root).unwrap());
    let name = inside.file_name().unwrap().to_str().unwrap();
    let player = sources.from_file(name, false).await.expect("a file under the root plays");
    player.stop();
    for s in [
        "../".to_owned() + outside.file_name().unwrap().to_str().unwrap(),
        outside.display().to_string(),
        "link.flac".into(),
        "/etc/passwd".into(),
        "file:///etc/passwd".into(),
    ] {
        let e = sources.from_file(&s, false).await.unwrap_err();
        assert_eq!(rule_of(&e), &Rule::OutsideRoots, "{s}");
    }
    let e = sources.from_file(".", false).await.unwrap_err();
    assert_eq!(rule_of(&e), &Rule::NotRegularFile);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_transports_and_bad_numbers_are_typed_errors_before_any_io() {
    for t in ["sctp", "TCP ", "", "udp-multicast", "quic"] {
        let e = t.parse::<RtspTransport>().unwrap_err();
        assert!(matches!(e, SourceError::InvalidArgument { name: "transport", .. }), "{t:?}: {e:?}");
    }
    let sources = Sources::operator();
    let e = sources.from_camera(None, 640, 0, 30).await.unwrap_err();
    assert!(matches!(e, SourceError::InvalidArgument { .. }), "{e:?}");
    let e = sources.screen_share(None, 0, 0, 0).await.unwrap_err();
    assert!(matches!(e, SourceError::InvalidArgument { name: "fps", .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_corrupt_empty_and_absurd_files_are_typed_errors_and_leak_nothing() {
    let _lock = LEAK_LOCK.lock().await;
    let dir = Scratch::new("bad-files");
    let good = make_file(&dir.0, Container::Mp4H264Aac, &MediaSpec::default()).unwrap();
    let sources = Sources::operator();
    sources.from_file(good.to_str().unwrap(), false).await.unwrap().stop(); // warm-up
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = resources();

    let zero = write_bytes(&dir.0, "zero.mp4", b"");
    let noise: Vec<u8> = (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let corrupt = write_bytes(&dir.0, "noise.mkv", &noise);
    let header = dir.0.join("header-only.mp4");
    truncated_copy(&good, &header, 2000).unwrap();
    // A WAV header claiming 4000 channels.
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36u32 + 8000).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&4000u16.to_le_bytes()); // channels
    wav.extend_from_slice(&48_000u32.to_le_bytes());
    wav.extend_from_slice(&(48_000u32 * 2 * 4000).to_le_bytes());
    wav.extend_from_slice(&(2u16 * 4000).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend(std::iter::repeat_n(0u8, 8000));
    let channels = write_bytes(&dir.0, "channels.wav", &wav);
    // A y4m header claiming 20000x20000.
    let mut y4m = b"YUV4MPEG2 W20000 H20000 F30:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    y4m.extend(std::iter::repeat_n(0x80u8, 4096));
    let huge = write_bytes(&dir.0, "huge.y4m", &y4m);

    for (file, what) in [
        (&zero, "empty"),
        (&corrupt, "noise"),
        (&header, "truncated"),
        (&channels, "4000 channels"),
        (&huge, "20000x20000"),
    ] {
        let r = tokio::time::timeout(Duration::from_secs(20), sources.from_file(file.to_str().unwrap(), false)).await;
        let e = r.unwrap_or_else(|_| panic!("{what}: the open is bounded")).map(|_| ()).unwrap_err();
        assert!(
            matches!(e, SourceError::Open { .. } | SourceError::Unsupported { .. }),
            "{what}: a typed open/unsupported error, got {e:?}"
        );
    }
    // Truncated mid-stream: it opens, plays what there is, then ends cleanly.
    let cut = dir.0.join("cut.mp4");
    let len = std::fs::metadata(&good).unwrap().len() as usize;
    truncated_copy(&good, &cut, len * 2 / 3).unwrap();
    if let Ok(player) = sources.from_file(cut.to_str().unwrap(), false).await {
        let heard = hear(player.audio.as_ref().unwrap().track(), 5.0, BOUND).await;
        assert!(heard.samples.len() < 2 * 48_000 + 4800, "less than the whole file");
        drop(player);
    }
    assert_released(baseline, "after bad files").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_devices_are_typed_errors_naming_the_device() {
    let sources = Sources::operator();
    // This machine has no V4L2 (no kernel modules): every camera is missing.
    for (device, name) in [(Some("/dev/video9"), "/dev/video9"), (None, "default camera")] {
        match sources.from_camera(device, 640, 480, 30).await.unwrap_err() {
            SourceError::Device { device, problem: DeviceProblem::Missing, .. } => assert_eq!(device, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    match sources.from_camera(Some("/etc/passwd"), 640, 480, 30).await.unwrap_err() {
        SourceError::Device { device, problem: DeviceProblem::Unsupported, .. } => assert_eq!(device, "/etc/passwd"),
        other => panic!("{other:?}"),
    }
    match sources.from_microphone(Some("no such microphone")).await.unwrap_err() {
        SourceError::Device { device, problem: DeviceProblem::Missing, .. } => assert_eq!(device, "no such microphone"),
        other => panic!("{other:?}"),
    }
    // A display nobody serves.
    match sources.screen_share(Some(":87"), 0, 0, 30).await.unwrap_err() {
        SourceError::Device { device, .. } => assert_eq!(device, ":87"),
        other => panic!("{other:?}"),
    }
    match sources.screen_share(Some("; rm -rf /"), 0, 0, 30).await.unwrap_err() {
        SourceError::Device { problem: DeviceProblem::Unsupported, .. } => {}
        other => panic!("{other:?}"),
    }
}
