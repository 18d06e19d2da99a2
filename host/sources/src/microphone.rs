//! `from_microphone`: a local audio input through cpal (ALSA on Linux;
//! PulseAudio and PipeWire through ALSA's plugins), as an audio track.
//!
//! cpal's stream lives on a thread of its own (streams are not `Send` on
//! every backend); its callback converts each block into a frame and queues
//! it without waiting (a real-time callback never blocks): a consumer that
//! falls more than 300 ms behind loses the oldest audio, not the callback's
//! deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use metered_audio::{AudioSource, AudioSourceOptions, InputLayout};
use metered_media::{Anchor, AudioFrame, ChannelLayout, SampleFormat};

use super::error::{DeviceProblem, SourceError, shown};
use super::player::{self, Control, EndReason, Player, PlayerState};
use super::policy::SourcePolicy;
use super::registry::{BoxFuture, Source, SourceOptions};

/// A microphone's queued audio beyond this is dropped (latency bound).
const MAX_QUEUED_SECS: f64 = 0.3;

/// How long an opened input may take to deliver its first audio. ALSA's
/// PulseAudio plugin was measured here taking 1.9 s from `play` to the first
/// callback; `from_microphone` resolves only once audio flows, so a peer
/// never gets that wait as a leading run of silence.
const FIRST_AUDIO_WITHIN: Duration = Duration::from_secs(8);

/// The microphone source kind (`microphone:NAME`, empty = the default input).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MicrophoneSource;

/// ALSA PCMs that are converters or mixers, not inputs of their own (each
/// would only relay `default`): left out of [`microphones`].
const NOT_INPUTS: [&str; 9] =
    ["null", "lavrate", "samplerate", "speexrate", "speex", "upmix", "vdownmix", "a52", "dmix"];

/// A device's name as `from_microphone` takes it: the backend's id (ALSA's
/// PCM name: `default`, `pulse`, `hw:CARD=…`), else its description.
fn device_name(d: &cpal::Device) -> String {
    d.id().map(|id| id.id().to_owned()).unwrap_or_else(|_| d.to_string())
}

/// The audio input devices by name (what `from_microphone` takes), the
/// default first; ALSA's converter and mixer plugins are left out.
pub fn microphones() -> Vec<String> {
    let host = cpal::default_host();
    let default = host.default_input_device().map(|d| device_name(&d));
    let mut names: Vec<String> =
        host.input_devices().map(|ds| ds.map(|d| device_name(&d)).collect()).unwrap_or_default();
    names.retain(|n| {
        // `samplerate_best`, `dmix:CARD=…`: the plugin is the name's first word.
        !NOT_INPUTS.contains(&n.split([':', '_']).next().unwrap_or_default())
    });
    if let Some(d) = &default {
        names.retain(|n| n != d);
        names.insert(0, d.clone());
    }
    names.dedup();
    names
}

fn device_error(device: &str, e: &cpal::Error) -> SourceError {
    let problem = match e.kind() {
        cpal::ErrorKind::DeviceBusy => DeviceProblem::Busy,
        cpal::ErrorKind::DeviceNotAvailable => DeviceProblem::Missing,
        _ => DeviceProblem::Unsupported,
    };
    SourceError::Device { device: shown(device), problem, reason: e.to_string() }
}

impl Source for MicrophoneSource {
    fn kind(&self) -> &'static str {
        "microphone"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["microphone"]
    }

    fn open<'a>(
        &'a self,
        location: &'a str,
        _options: &'a SourceOptions,
        policy: &'a SourcePolicy,
    ) -> BoxFuture<'a, Result<Player, SourceError>> {
        Box::pin(async move {
            policy.check_device("microphone")?;
            let name = location.strip_prefix("microphone:").unwrap_or(location).to_owned();
            if name.len() > 512 || name.chars().any(char::is_control) {
                return Err(SourceError::Device {
                    device: shown(&name),
                    problem: DeviceProblem::Missing,
                    reason: "not a device name".into(),
                });
            }
            open(name).await
        })
    }
}

async fn open(name: String) -> Result<Player, SourceError> {
    let label = if name.is_empty() { "default microphone".to_owned() } else { shown(&name) };
    let control = Control::new();
    let anchor = Anchor::new();
    let audio = AudioSource::new(AudioSourceOptions {
        input_rate: 48_000,
        input_layout: InputLayout::Stereo,
        max_buffered_seconds: 1.0,
        ..AudioSourceOptions::default()
    })
    .map_err(|e| SourceError::Open { location: label.clone(), reason: e.to_string() })?;
    audio.share_anchor(anchor.clone());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), SourceError>>();
    let (thread_control, thread_audio, thread_anchor, thread_label) =
        (control.clone(), audio.clone(), anchor.clone(), label.clone());
    std::thread::Builder::new()
        .name("metered-microphone".into())
        .spawn(move || capture(name, thread_label, thread_audio, thread_anchor, thread_control, ready_tx))
        .map_err(|e| SourceError::Open { location: label.clone(), reason: format!("no thread: {e}") })?;
    // Dropping this future before the device opened stops the thread.
    let guard = StopOnDrop(Some(control.clone()));
    ready_rx
        .await
        .map_err(|_| SourceError::Open { location: label.clone(), reason: "capture thread ended".into() })??;
    guard.disarm();
    let (player, feed) = player::assemble(label, Some(audio), None, anchor, control);
    feed.control.set_state(PlayerState::Live);
    // The capture thread holds its own handles to the sink and control.
    drop(feed);
    Ok(player)
}

struct StopOnDrop(Option<Arc<Control>>);

impl StopOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.stop();
        }
    }
}

fn capture(
    name: String,
    label: String,
    audio: AudioSource,
    anchor: Anchor,
    control: Arc<Control>,
    ready: tokio::sync::oneshot::Sender<Result<(), SourceError>>,
) {
    let host = cpal::default_host();
    let device = if name.is_empty() {
        host.default_input_device()
    } else {
        host.input_devices().ok().and_then(|mut ds| ds.find(|d| device_name(d) == name || d.to_string() == name))
    };
    let Some(device) = device else {
        let _ = ready.send(Err(SourceError::Device {
            device: label,
            problem: DeviceProblem::Missing,
            reason: "no such audio input".into(),
        }));
        return;
    };
    let config = match device.default_input_config() {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(device_error(&label, &e)));
            return;
        }
    };
    let (rate, channels, format) = (config.sample_rate(), config.channels(), config.sample_format());
    if channels == 0 || channels > 32 || !(1_000..=384_000).contains(&rate) {
        let _ = ready.send(Err(SourceError::Device {
            device: label,
            problem: DeviceProblem::Unsupported,
            reason: format!("{channels} channels at {rate} Hz"),
        }));
        return;
    }
    let failed = Arc::new(AtomicBool::new(false));
    let on_error = {
        let failed = failed.clone();
        move |e: cpal::Error| {
            if !matches!(e.kind(), cpal::ErrorKind::Xrun) {
                tracing::warn!(target: "metered_sources", "microphone: {e}");
                failed.store(true, Ordering::Release);
            }
        }
    };
    let mut frame = AudioFrame {
        sample_rate: rate,
        layout: ChannelLayout::from_channels(usize::from(channels)),
        format: SampleFormat::F32,
        planar: false,
        pts: 0,
        data: Vec::new(),
    };
    let sink = audio.clone();
    let (first_tx, first_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let mut first_tx = Some(first_tx);
    let mut deliver = move |bytes: &mut dyn FnMut(&mut Vec<u8>)| {
        // The media clock starts at the first audio, not at `play`.
        anchor.get_or_set(Instant::now());
        if let Some(tx) = first_tx.take() {
            let _ = tx.send(());
        }
        frame.data.clear();
        bytes(&mut frame.data);
        if sink.buffered_seconds() < MAX_QUEUED_SECS {
            let _ = sink.try_push_frame(&frame);
        }
    };
    let stream_config = config.config();
    let stream = match format {
        cpal::SampleFormat::F32 => device.build_input_stream::<f32, _, _>(
            stream_config,
            move |data, _| deliver(&mut |out| data.iter().for_each(|s| out.extend_from_slice(&s.to_le_bytes()))),
            on_error,
            Some(Duration::from_secs(5)),
        ),
        cpal::SampleFormat::I16 => device.build_input_stream::<i16, _, _>(
            stream_config,
            move |data, _| {
                deliver(&mut |out| {
                    data.iter().for_each(|s| out.extend_from_slice(&(f32::from(*s) / 32768.0).to_le_bytes()))
                })
            },
            on_error,
            Some(Duration::from_secs(5)),
        ),
        other => {
            let _ = ready.send(Err(SourceError::Device {
                device: label,
                problem: DeviceProblem::Unsupported,
                reason: format!("sample format {other:?}"),
            }));
            return;
        }
    };
    let stream = match stream.and_then(|s| s.play().map(|()| s)) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(device_error(&label, &e)));
            return;
        }
    };
    // Resolve the open only once audio flows (bounded; a stop ends the wait).
    let waited = Instant::now();
    loop {
        match first_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(()) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                if waited.elapsed() < FIRST_AUDIO_WITHIN
                    && !control.is_stopped()
                    && !failed.load(Ordering::Acquire) => {}
            Err(_) => {
                drop(stream);
                let _ = ready.send(Err(SourceError::Device {
                    device: label,
                    problem: DeviceProblem::Unsupported,
                    reason: format!("no audio within {} s of starting", FIRST_AUDIO_WITHIN.as_secs()),
                }));
                audio.end();
                return;
            }
        }
    }
    tracing::debug!(target: "metered_sources", device = %label, after_ms = waited.elapsed().as_millis() as u64, "microphone: first audio");
    if ready.send(Ok(())).is_err() {
        return;
    }
    while !control.is_stopped() && !failed.load(Ordering::Acquire) {
        control.sleep(Duration::from_millis(100));
    }
    drop(stream);
    let reason = if failed.load(Ordering::Acquire) {
        EndReason::Failed(SourceError::Device {
            device: label,
            problem: DeviceProblem::Missing,
            reason: "the input stopped".into(),
        })
    } else {
        EndReason::Stopped
    };
    audio.end();
    control.finish(reason);
}
