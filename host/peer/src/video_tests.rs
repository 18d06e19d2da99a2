//! Video over two in-process connections on loopback UDP: a flood of PLIs
//! costs rate-limited keyframes; corrupt frames are refused by the decoder,
//! answered with a PLI, and the picture recovers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use metered_media::{Frame, MediaStreamTrack, VideoFrame, VideoSource, VideoSourceOptions};
use metered_protocol::SdpKind;
use metered_video::{Encoder, EncoderOptions, VideoCodec};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use webrtc::media::io::sample_builder::SampleBuilder;
use webrtc::rtp::codecs::vp8::Vp8Packet;

use crate::rtc::{IcePolicy, LocalRtpTrack, Pc, PcEvent, PcState, RemoteRtp, RtcApi};

/// A connected pair: A sends `rtp`, B's first received track is returned.
async fn pair(rtp: &LocalRtpTrack) -> (Pc, Pc, RemoteRtp) {
    let api = RtcApi::new(&IcePolicy::LoopbackOnly, &["video/VP8".to_owned()]).expect("api");
    let (a_tx, mut a_events) = mpsc::unbounded_channel();
    let (b_tx, mut b_events) = mpsc::unbounded_channel();
    let a = Pc::new(&api, &[], 0, a_tx).await.expect("pc a");
    let b = Pc::new(&api, &[], 0, b_tx).await.expect("pc b");
    let _sender = a.add_track(rtp).await.expect("add_track");
    b.set_remote(SdpKind::Offer, a.offer().await.expect("offer")).await.expect("offer applied");
    a.set_remote(SdpKind::Answer, b.answer().await.expect("answer")).await.expect("answer applied");
    tokio::spawn(async move { while a_events.recv().await.is_some() {} });
    let track = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match b_events.recv().await {
                Some((_, PcEvent::Track { track, .. })) => break track,
                Some((_, PcEvent::State(PcState::Failed))) | None => panic!("connection failed"),
                _ => {}
            }
        }
    })
    .await
    .expect("a track within 10 s");
    (a, b, track)
}

fn coloured(n: u64, luma: u8) -> VideoFrame {
    let mut f = VideoFrame::black(320, 240);
    f.plane_mut(0).fill(luma);
    f.pts = n * 3000;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pli_flood_costs_at_most_one_keyframe_per_300_ms() {
    let rtp = LocalRtpTrack::video("flood", "flood-stream");
    let source = VideoSource::new(VideoSourceOptions { max_buffered_frames: 3, ..Default::default() });
    let current: Arc<Mutex<Arc<dyn MediaStreamTrack>>> = Arc::new(Mutex::new(source.track()));
    let pump = crate::video_send::start(rtp.clone(), current, Arc::new(Notify::new()), Default::default());
    let feeder = {
        let s = source.clone();
        tokio::spawn(async move {
            for n in 0u64.. {
                if s.push(coloured(n, 100 + (n % 50) as u8)).await.is_err() {
                    break;
                }
            }
        })
    };
    let (a, b, track) = pair(&rtp).await;
    let mut builder = SampleBuilder::new(512, Vp8Packet::default(), 90_000);
    let (mut frames, mut keyframes, mut plis) = (0u32, 0u32, 0u32);
    let start = Instant::now();
    let mut next_pli = Instant::now();
    let flood = Duration::from_secs(3);
    while start.elapsed() < flood {
        if Instant::now() >= next_pli {
            // 100 PLIs a second.
            track.request_keyframe().await;
            plis += 1;
            next_pli += Duration::from_millis(10);
        }
        let Ok(Ok(packet)) = tokio::time::timeout(Duration::from_millis(10), track.read_packet()).await else {
            continue;
        };
        builder.push(packet);
        while let Some(sample) = builder.pop() {
            frames += 1;
            // VP8 (RFC 6386 §9.1): bit 0 of the frame tag is 0 on a keyframe.
            if sample.data.first().is_some_and(|b| b & 1 == 0) {
                keyframes += 1;
            }
        }
    }
    let seen = rtp.feedback().requests.load(Ordering::Relaxed);
    eprintln!("{plis} PLIs sent, {seen} seen by the sender; {keyframes} keyframes in {frames} frames over {flood:?}");
    assert!(seen >= 100, "the sender saw the flood ({seen} PLIs)");
    assert!(frames >= 60, "video kept flowing ({frames} frames)");
    // 3 s / 300 ms = 10, plus the first and one in flight.
    assert!((3..=12).contains(&keyframes), "{keyframes} keyframes for {plis} PLIs");
    pump.abort();
    feeder.abort();
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_frames_are_refused_answered_with_a_pli_and_the_picture_recovers() {
    let rtp = LocalRtpTrack::video("junk", "junk-stream");
    let writer = {
        let rtp = rtp.clone();
        tokio::spawn(async move {
            let mut enc = Encoder::new(EncoderOptions { codec: VideoCodec::Vp8, ..Default::default() }).unwrap();
            // The receiver's track appears with the first packet: write from the binding on.
            while !rtp.is_bound() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let plis_before = rtp.feedback().requests.load(Ordering::Relaxed);
            for n in 0u64..150 {
                if rtp.feedback().take_keyframe_request() {
                    enc.request_keyframe();
                }
                let mut data = Vec::new();
                enc.encode(&coloured(n, if n < 60 { 60 } else { 200 }), |e| data = e.data.to_vec()).unwrap();
                if (30..60).contains(&n) && n % 3 == 0 {
                    // Hostile: a "keyframe" claiming 16383x16383, then junk bytes.
                    let mut junk = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0x3f, 0xff, 0x3f];
                    junk.extend((0..400u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
                    rtp.write_codec(0, &junk, Duration::from_millis(33)).await.unwrap();
                } else {
                    rtp.write_codec(0, &data, Duration::from_millis(33)).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(33)).await;
            }
            rtp.feedback().requests.load(Ordering::Relaxed) - plis_before
        })
    };
    let (a, b, remote) = pair(&rtp).await;
    let track = crate::video_recv::spawn_video_track("junk".into(), remote, 1920 * 1080, || {}).expect("track");
    let reader: Arc<dyn MediaStreamTrack> = track.clone();
    let mut frame = Frame::empty(metered_media::MediaKind::Video);
    let mut last_luma = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(2), reader.recv_into(&mut frame)).await else {
            break;
        };
        if let Frame::Video(v) = &frame {
            last_luma = v.yuv_at(160, 120).map_or(0, |p| p.0);
            if last_luma > 190 && writer.is_finished() {
                break;
            }
        }
    }
    let plis = writer.await.unwrap();
    eprintln!(
        "decoded {}, refused {}, keyframe requests {} (sender saw {plis}); last luma {last_luma}",
        track.decoded_frames(),
        track.decode_errors(),
        track.keyframe_requests()
    );
    assert!(track.decode_errors() >= 1, "the junk was refused");
    assert!(track.keyframe_requests() >= 2, "a PLI at the start and after junk");
    assert!(plis >= 1, "the sender received the PLIs");
    assert!((190..=210).contains(&last_luma), "the picture recovered to the new content (luma {last_luma})");
    assert!(track.decoded_frames() >= 100, "decoding went on ({} frames)", track.decoded_frames());
    track.stop();
    a.close().await;
    b.close().await;
}
