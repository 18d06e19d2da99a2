//! Encode → decode through the real libvpx, libx264 and FFmpeg decoders.

use metered_media::VideoFrame;
use metered_video::{Decoder, DecoderOptions, Encoder, EncoderOptions, VideoCodec, VideoError};

/// A `width`×`height` frame of one colour (Y, U, V) with a white square
/// in the top-left quarter, so orientation and content are checked.
fn picture(width: u32, height: u32, (y, u, v): (u8, u8, u8), pts: u64) -> VideoFrame {
    let mut f = VideoFrame::default();
    f.reshape(width, height);
    f.pts = pts;
    let stride = f.strides[0];
    for (r, row) in f.plane_mut(0).chunks_mut(stride).enumerate() {
        for (c, px) in row.iter_mut().enumerate() {
            *px = if r < height as usize / 4 && c < width as usize / 4 { 235 } else { y };
        }
    }
    f.plane_mut(1).fill(u);
    f.plane_mut(2).fill(v);
    f
}

fn close(a: (u8, u8, u8), b: (u8, u8, u8)) -> bool {
    let d = |x: u8, y: u8| (i16::from(x) - i16::from(y)).abs();
    d(a.0, b.0) <= 10 && d(a.1, b.1) <= 10 && d(a.2, b.2) <= 10
}

/// Encodes `n` frames and decodes them; returns the frames decoded and the
/// keyframe flags of what was encoded.
fn run(codec: VideoCodec, width: u32, height: u32, colour: (u8, u8, u8), n: u64) -> (Vec<VideoFrame>, Vec<bool>) {
    let mut enc = Encoder::new(EncoderOptions { codec, bitrate: 800_000, fps: 30 }).unwrap();
    let mut dec = Decoder::new(DecoderOptions { codec, ..Default::default() }).unwrap();
    let (mut out, mut keys) = (Vec::new(), Vec::new());
    for i in 0..n {
        let frame = picture(width, height, colour, i * 3000);
        let mut encoded = Vec::new();
        enc.encode(&frame, |e| {
            keys.push(e.keyframe);
            encoded.push((e.data.to_vec(), e.pts));
        })
        .unwrap();
        for (data, pts) in encoded {
            let mut pic = VideoFrame::default();
            if dec.decode(&data, pts, &mut pic).unwrap() {
                out.push(pic);
            }
        }
    }
    (out, keys)
}

#[test]
fn vp8_and_h264_round_trip_keep_colour_size_and_layout() {
    for codec in VideoCodec::ALL {
        let colour = (81, 90, 240); // red
        let (frames, keys) = run(codec, 320, 240, colour, 15);
        assert!(frames.len() >= 14, "{codec}: {} of 15 frames decoded", frames.len());
        assert!(keys[0], "{codec}: the first frame is a keyframe");
        assert!(keys[1..].iter().all(|k| !k), "{codec}: no keyframe after the first: {keys:?}");
        let last = frames.last().unwrap();
        assert_eq!((last.width, last.height), (320, 240), "{codec}");
        let centre = last.yuv_at(200, 160).unwrap();
        assert!(close(centre, colour), "{codec}: centre {centre:?}, sent {colour:?}");
        let corner = last.yuv_at(20, 20).unwrap();
        assert!(corner.0 > 200, "{codec}: the white square is top-left, got {corner:?}");
        assert!(last.pts > 0 && last.pts % 3000 == 0, "{codec}: pts {}", last.pts);
    }
}

#[test]
fn h264_crops_odd_sides_and_vp8_keeps_them() {
    let (h264, _) = run(VideoCodec::H264, 321, 241, (128, 128, 128), 3);
    assert_eq!((h264[0].width, h264[0].height), (320, 240));
    let (vp8, _) = run(VideoCodec::Vp8, 321, 241, (128, 128, 128), 3);
    assert_eq!((vp8[0].width, vp8[0].height), (321, 241));
}

#[test]
fn keyframes_come_on_request_and_on_a_size_change() {
    for codec in VideoCodec::ALL {
        let mut enc = Encoder::new(EncoderOptions { codec, ..Default::default() }).unwrap();
        let mut keys = Vec::new();
        for i in 0..12u64 {
            if i == 5 {
                enc.request_keyframe();
            }
            let (w, h) = if i < 8 { (160, 120) } else { (320, 180) };
            enc.encode(&picture(w, h, (60, 100, 200), i * 3000), |e| keys.push(e.keyframe)).unwrap();
        }
        let at: Vec<usize> = keys.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect();
        assert_eq!(at, vec![0, 5, 8], "{codec}: keyframes at {at:?}");
    }
}

#[test]
fn bitrate_changes_take_effect() {
    for codec in VideoCodec::ALL {
        let mut enc = Encoder::new(EncoderOptions { codec, bitrate: 2_000_000, fps: 30 }).unwrap();
        let mut sizes = Vec::new();
        // Faint noise over a moving gradient is costly to code: the rate
        // controller, not the content, decides the size.
        let mut seed = 7u32;
        for i in 0..120u64 {
            if i == 60 {
                enc.set_bitrate(150_000);
                assert_eq!(enc.bitrate(), 150_000);
            }
            let mut f = picture(320, 240, (128, 128, 128), i * 3000);
            for (n, px) in f.plane_mut(0).iter_mut().enumerate() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *px = ((n as u64 % 320 + i * 4) % 200) as u8 + (seed >> 28) as u8;
            }
            enc.encode(&f, |e| sizes.push(e.data.len())).unwrap();
        }
        let high: usize = sizes[30..60].iter().sum();
        let low: usize = sizes[90..].iter().sum();
        assert!(low * 3 < high, "{codec}: {high} bytes at 2 Mbit/s vs {low} after dropping to 150 kbit/s");
    }
}

#[test]
fn corrupt_input_is_an_error_and_the_decoder_recovers() {
    for codec in VideoCodec::ALL {
        let mut dec = Decoder::new(DecoderOptions { codec, ..Default::default() }).unwrap();
        let mut pic = VideoFrame::default();
        let mut seed = 1u32;
        for len in [1usize, 5, 17, 300, 5000] {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 24) as u8
                })
                .collect();
            // Either refused or no picture: never a panic, never a picture of garbage size.
            if let Ok(true) = dec.decode(&junk, 0, &mut pic) {
                assert!(pic.validate().is_ok());
            }
        }
        let mut enc = Encoder::new(EncoderOptions { codec, ..Default::default() }).unwrap();
        let mut good = Vec::new();
        enc.encode(&picture(160, 120, (81, 90, 240), 0), |e| good = e.data.to_vec()).unwrap();
        assert!(dec.decode(&good, 0, &mut pic).unwrap(), "{codec}: a keyframe decodes after junk");
        assert_eq!((pic.width, pic.height), (160, 120));
    }
}

#[test]
fn pictures_larger_than_the_limit_are_refused() {
    for codec in VideoCodec::ALL {
        let mut enc = Encoder::new(EncoderOptions { codec, ..Default::default() }).unwrap();
        let mut key = Vec::new();
        enc.encode(&picture(640, 360, (16, 128, 128), 0), |e| key = e.data.to_vec()).unwrap();
        let mut dec = Decoder::new(DecoderOptions { codec, max_pixels: 320 * 240 }).unwrap();
        let err = dec.decode(&key, 0, &mut VideoFrame::default()).unwrap_err();
        match (codec, &err) {
            (VideoCodec::Vp8, VideoError::TooLarge { width: 640, height: 360, .. }) => {}
            (VideoCodec::H264, VideoError::Codec { .. } | VideoError::TooLarge { .. }) => {}
            _ => panic!("{codec}: {err:?}"),
        }
    }
}

#[test]
fn malformed_frames_are_refused_before_the_encoder() {
    let mut enc = Encoder::new(EncoderOptions::default()).unwrap();
    let mut f = VideoFrame::black(64, 64);
    f.data.truncate(10);
    assert!(matches!(enc.encode(&f, |_| {}), Err(VideoError::Frame(_))));
    assert!(matches!(enc.encode(&VideoFrame::black(1, 1), |_| {}), Err(VideoError::Frame(_))));
}
