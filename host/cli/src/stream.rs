//! `metered stream SOURCE --channel C`: joins a room as a peer and publishes
//! a file, RTSP URL or device into it until interrupted (or until a file
//! that does not loop ends); `metered devices`: what this host can capture.
//!
//! The source string goes through the operator's [`SourcePolicy`]: plain
//! paths, http(s)/rtsp URLs and devices; pseudo-protocols refused. A refused
//! or unopenable source prints the typed error and exits non-zero.

#[cfg(feature = "hosting")]
use std::time::Duration;

#[cfg(feature = "hosting")]
use anyhow::{Context, bail};
#[cfg(feature = "hosting")]
use metered_realtime::media::{MediaStream, MediaStreamTrack, StreamMetadata};
#[cfg(feature = "hosting")]
use metered_realtime::sources::{EndReason, PlayerState, RtspTransport, SourceOptions, SourcePolicy, Sources};

/// Options of `metered stream`.
#[cfg(feature = "hosting")]
#[derive(clap::Args)]
pub(crate) struct StreamArgs {
    /// What to publish: a media file path, an http(s) or rtsp(s) URL,
    /// `camera:/dev/videoN`, `screen::0.0[+X,Y]`, `microphone:NAME` (or
    /// `camera:`, `screen:`, `microphone:` for the defaults).
    source: String,
    /// The channel (room) to join.
    #[arg(long)]
    channel: String,
    /// The messaging service (`metered serve`, or the hosted service).
    #[arg(long, env = "METERED_URL", default_value = "ws://127.0.0.1:8787")]
    url: String,
    /// A publishable key.
    #[arg(long, env = "METERED_KEY", conflicts_with = "token", required_unless_present = "token")]
    key: Option<String>,
    /// A JWT instead of a key (e.g. from `metered token`).
    #[arg(long, env = "METERED_TOKEN")]
    token: Option<String>,
    /// Repeat a file (continuous timestamps, no gap at the seam).
    #[arg(long = "loop")]
    looping: bool,
    /// RTSP lower transport: tcp, udp, udp_multicast or http.
    #[arg(long, default_value = "tcp")]
    transport: String,
    /// The published stream's id (peers see it as the stream id).
    #[arg(long)]
    stream_id: Option<String>,
    /// Track metadata: a JSON object (e.g. '{"role":"camera","label":"Door"}').
    #[arg(long)]
    metadata: Option<String>,
    /// Capture size (cameras, screens; 0x0 = native).
    #[arg(long, default_value_t = 0)]
    width: u32,
    /// Capture height.
    #[arg(long, default_value_t = 0)]
    height: u32,
    /// Capture frame rate (cameras, screens).
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Bound on opening the source, in seconds.
    #[arg(long, default_value_t = 10.0)]
    open_timeout: f64,
    /// Also allow this FFmpeg pseudo-protocol (`concat`, `subfile`, ...):
    /// refused unless named here.
    #[arg(long = "allow-protocol")]
    allow_protocols: Vec<String>,
}

#[cfg(feature = "hosting")]
pub(crate) fn run(args: StreamArgs) -> anyhow::Result<()> {
    // Checked before anything is opened or joined.
    let transport: RtspTransport = args.transport.parse()?;
    let metadata = match &args.metadata {
        Some(text) => Some(StreamMetadata::parse(text, 16 * 1024).context("--metadata")?),
        None => None,
    };
    if !(args.open_timeout > 0.0 && args.open_timeout <= 600.0) {
        bail!("--open-timeout must be in (0, 600] seconds");
    }
    let mut policy = SourcePolicy::operator();
    for p in &args.allow_protocols {
        policy = policy.allow_protocol(p);
    }
    let options = SourceOptions {
        looping: args.looping,
        transport,
        width: args.width,
        height: args.height,
        fps: args.fps,
        open_timeout: Duration::from_secs_f64(args.open_timeout),
        ..SourceOptions::default()
    };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async move {
        let sources = Sources::new(policy);
        let player = sources.open_str(&args.source, &options).await?;
        let mut tracks: Vec<std::sync::Arc<dyn MediaStreamTrack>> = Vec::new();
        if let Some(a) = &player.audio {
            tracks.push(a.track());
        }
        let has_video = player.video.is_some();
        if has_video {
            // Video over WebRTC is the next part (VP8/H.264 senders); until
            // then only a source's audio reaches the room.
            eprintln!("metered stream: note: this build sends audio only; the source's video is decoded but not sent");
        }
        if tracks.is_empty() {
            player.stop();
            bail!("{} has no audio track to publish", args.source);
        }
        let peer = crate::room::peer(&args.url, args.key.as_deref(), args.token.as_deref())?;
        let stream = MediaStream::with_tracks(args.stream_id.clone(), tracks.iter().cloned());
        peer.add_stream(&stream, metadata)?;
        peer.join(&args.channel).await.with_context(|| format!("joining {}", args.channel))?;
        eprintln!(
            "metered stream: publishing {} ({}) as stream {} in {} at {}",
            player.source(),
            if has_video { "audio; video not sent yet" } else { "audio" },
            stream.id(),
            args.channel,
            args.url
        );
        let mut states = player.states();
        let outcome = loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break Ok(()),
                changed = states.changed() => {
                    if changed.is_err() {
                        break Ok(());
                    }
                    let state = states.borrow_and_update().clone();
                    match state {
                        PlayerState::Reconnecting { attempt, reason } => {
                            eprintln!("metered stream: source dropped ({reason}); reconnecting (attempt {attempt})");
                        }
                        PlayerState::Live => eprintln!("metered stream: live"),
                        PlayerState::Ended { reason: EndReason::Failed(e) } => break Err(anyhow::Error::new(e)),
                        PlayerState::Ended { reason } => {
                            eprintln!("metered stream: source ended ({reason:?})");
                            // Let the last frames leave before leaving.
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            break Ok(());
                        }
                        _ => {}
                    }
                }
            }
        };
        player.stop();
        peer.close().await;
        outcome
    })
}

/// Options of `metered devices`.
#[derive(clap::Args)]
pub(crate) struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn devices(args: DevicesArgs) -> anyhow::Result<()> {
    let d = metered_realtime::sources::list_devices();
    if args.json {
        let v = serde_json::json!({
            "cameras": d.cameras,
            "microphones": d.microphones,
            "screen": d.screen,
            "ffmpeg_inputs": d.ffmpeg_inputs,
        });
        println!("{v}");
        return Ok(());
    }
    let list = |v: &[String]| if v.is_empty() { "(none)".to_owned() } else { v.join(", ") };
    println!("cameras:      {}", list(&d.cameras));
    println!("microphones:  {}", list(&d.microphones));
    println!("screen:       {}", d.screen.as_deref().unwrap_or("(no DISPLAY)"));
    println!("ffmpeg inputs: {}", list(&d.ffmpeg_inputs));
    Ok(())
}
