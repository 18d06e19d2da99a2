//! The [`Source`] trait, the [`Registry`] of source kinds, and [`Sources`]:
//! a registry plus the [`SourcePolicy`] every string it opens goes through.
//!
//! A new kind (say, SRT) implements [`Source`] and is registered; nothing
//! else changes. Kinds are found by name (`"file"`, `"rtsp"`, …) or by the
//! scheme of a source string (`rtsp://…` → `rtsp`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::error::{SourceError, shown};
use super::player::Player;
use super::policy::SourcePolicy;

/// A boxed future (the object-safe shape of an async `open`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The RTSP lower transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection (default; firewall-friendly).
    #[default]
    Tcp,
    /// RTP over UDP.
    Udp,
    /// RTP over UDP multicast.
    UdpMulticast,
    /// Tunnelled through HTTP.
    Http,
}

impl RtspTransport {
    /// The wire name (`tcp`, `udp`, `udp_multicast`, `http`).
    pub fn as_str(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
            RtspTransport::UdpMulticast => "udp_multicast",
            RtspTransport::Http => "http",
        }
    }
}

impl std::str::FromStr for RtspTransport {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, SourceError> {
        match s {
            "tcp" => Ok(RtspTransport::Tcp),
            "udp" => Ok(RtspTransport::Udp),
            "udp_multicast" => Ok(RtspTransport::UdpMulticast),
            "http" => Ok(RtspTransport::Http),
            other => Err(SourceError::InvalidArgument {
                name: "transport",
                value: shown(other),
                expected: "one of tcp, udp, udp_multicast, http",
            }),
        }
    }
}

/// How to open a source; each kind reads what applies to it. Build it with
/// struct update syntax: `SourceOptions { looping: true, ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// Repeat a seekable file (files).
    pub looping: bool,
    /// RTSP lower transport (RTSP).
    pub transport: RtspTransport,
    /// Capture or output width, 0 = native (cameras, screens).
    pub width: u32,
    /// Capture or output height, 0 = native.
    pub height: u32,
    /// Capture frame rate (cameras, screens).
    pub fps: u32,
    /// Bound on opening.
    pub open_timeout: Duration,
    /// Bound on one read of a live source (a stall longer than this drops
    /// the stream, which reconnects).
    pub read_timeout: Duration,
    /// Reopen a live source that drops (RTSP).
    pub reconnect: bool,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            looping: false,
            transport: RtspTransport::Tcp,
            width: 0,
            height: 0,
            fps: 30,
            open_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            reconnect: true,
        }
    }
}

impl SourceOptions {
    /// Checks the numbers before any I/O.
    pub(crate) fn validate(&self) -> Result<(), SourceError> {
        let side = |name, v: u32| {
            if v > metered_media::VideoFrame::MAX_SIDE {
                return Err(SourceError::InvalidArgument { name, value: v.to_string(), expected: "0..=8192" });
            }
            Ok(())
        };
        side("width", self.width)?;
        side("height", self.height)?;
        if (self.width == 0) != (self.height == 0) {
            return Err(SourceError::InvalidArgument {
                name: "width/height",
                value: format!("{}x{}", self.width, self.height),
                expected: "both 0 (native) or both set",
            });
        }
        if !(1..=240).contains(&self.fps) {
            return Err(SourceError::InvalidArgument { name: "fps", value: self.fps.to_string(), expected: "1..=240" });
        }
        if self.open_timeout.is_zero() || self.read_timeout.is_zero() {
            return Err(SourceError::InvalidArgument { name: "timeout", value: "0".into(), expected: "more than 0" });
        }
        Ok(())
    }
}

/// A kind of source.
pub trait Source: Send + Sync + 'static {
    /// Its name (`"file"`, `"rtsp"`, `"camera"`, `"microphone"`, `"screen"`).
    fn kind(&self) -> &'static str;

    /// The URL schemes whose strings it opens (`["rtsp", "rtsps"]`); a plain
    /// path belongs to the kind claiming `file`.
    fn schemes(&self) -> &'static [&'static str];

    /// Opens `location` under `policy`: the policy check comes first, before
    /// any I/O; every failure is a typed [`SourceError`].
    fn open<'a>(
        &'a self,
        location: &'a str,
        options: &'a SourceOptions,
        policy: &'a SourcePolicy,
    ) -> BoxFuture<'a, Result<Player, SourceError>>;
}

/// The source kinds, by name.
#[derive(Clone)]
pub struct Registry {
    kinds: Vec<Arc<dyn Source>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.iter().map(|k| k.kind())).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::standard()
    }
}

impl Registry {
    /// No kinds.
    pub fn empty() -> Self {
        Self { kinds: Vec::new() }
    }

    /// Every kind this crate has: file, rtsp, camera, screen, microphone.
    pub fn standard() -> Self {
        let mut r = Self::empty();
        r.register(Arc::new(super::file::FileSource));
        r.register(Arc::new(super::rtsp::RtspSource));
        r.register(Arc::new(super::device::CameraSource));
        r.register(Arc::new(super::device::ScreenSource));
        r.register(Arc::new(super::microphone::MicrophoneSource));
        r
    }

    /// Adds (or replaces, by name) a kind.
    pub fn register(&mut self, source: Arc<dyn Source>) {
        self.kinds.retain(|k| k.kind() != source.kind());
        self.kinds.push(source);
    }

    /// The kind named `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Source>> {
        self.kinds.iter().find(|k| k.kind() == kind)
    }

    /// The kind that handles a source string, by its scheme (a string with
    /// no scheme is a path: the kind claiming `file`).
    pub fn for_string(&self, source: &str) -> Option<&Arc<dyn Source>> {
        let scheme = scheme_of(source).map(str::to_ascii_lowercase).unwrap_or_else(|| "file".to_owned());
        self.kinds.iter().find(|k| k.schemes().iter().any(|s| *s == scheme))
    }

    /// The kinds' names.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.kind()).collect()
    }
}

/// The scheme of `s` (`rtsp` in `rtsp://…`), if it starts with one.
pub(crate) fn scheme_of(s: &str) -> Option<&str> {
    let (head, _) = s.split_once(':')?;
    let mut chars = head.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .then_some(head)
}

/// A registry and the policy every string it opens goes through.
#[derive(Debug, Clone)]
pub struct Sources {
    registry: Registry,
    policy: SourcePolicy,
}

impl Sources {
    /// The standard kinds under `policy`.
    pub fn new(policy: SourcePolicy) -> Self {
        Self { registry: Registry::standard(), policy }
    }

    /// The standard kinds under the operator's policy (plain paths,
    /// http(s)/rtsp URLs, devices; no pseudo-protocols).
    pub fn operator() -> Self {
        Self::new(SourcePolicy::operator())
    }

    /// These kinds under `policy`.
    pub fn with_registry(registry: Registry, policy: SourcePolicy) -> Self {
        Self { registry, policy }
    }

    /// The policy.
    pub fn policy(&self) -> &SourcePolicy {
        &self.policy
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Opens `location` as source kind `kind`.
    pub async fn open(&self, kind: &str, location: &str, options: &SourceOptions) -> Result<Player, SourceError> {
        options.validate()?;
        let source = self.registry.get(kind).ok_or_else(|| SourceError::UnknownKind { location: shown(kind) })?.clone();
        source.open(location, options, &self.policy).await
    }

    /// Opens a source string, its kind found by scheme (a path is a file).
    pub async fn open_str(&self, source: &str, options: &SourceOptions) -> Result<Player, SourceError> {
        options.validate()?;
        let Some(kind) = self.registry.for_string(source).cloned() else {
            // No kind claims the scheme: name the rule if the policy refuses
            // it (a pseudo-protocol), else say no kind handles it.
            return Err(match self.policy.check_file(source) {
                Err(e @ SourceError::Refused { .. }) => e,
                _ => SourceError::UnknownKind { location: shown(source) },
            });
        };
        kind.open(source, options, &self.policy).await
    }

    /// A media file (or an http(s) URL the policy allows); `looping`
    /// repeats it with continuous timestamps.
    pub async fn from_file(&self, file: &str, looping: bool) -> Result<Player, SourceError> {
        self.open("file", file, &SourceOptions { looping, ..SourceOptions::default() }).await
    }

    /// An RTSP stream over `transport`.
    pub async fn from_rtsp(&self, url: &str, transport: RtspTransport) -> Result<Player, SourceError> {
        self.open("rtsp", url, &SourceOptions { transport, ..SourceOptions::default() }).await
    }

    /// A camera (`None`: the first one) at `width`×`height`, `fps`.
    pub async fn from_camera(
        &self,
        device: Option<&str>,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Player, SourceError> {
        self.open("camera", device.unwrap_or(""), &SourceOptions { width, height, fps, ..SourceOptions::default() })
            .await
    }

    /// A microphone (`None`: the default input).
    pub async fn from_microphone(&self, device: Option<&str>) -> Result<Player, SourceError> {
        self.open("microphone", device.unwrap_or(""), &SourceOptions::default()).await
    }

    /// A screen (`None`: the primary display); 0×0 keeps its native size.
    pub async fn screen_share(
        &self,
        device: Option<&str>,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Player, SourceError> {
        self.open("screen", device.unwrap_or(""), &SourceOptions { width, height, fps, ..SourceOptions::default() })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_found_by_name_and_scheme() {
        let r = Registry::standard();
        assert_eq!(r.kinds(), ["file", "rtsp", "camera", "screen", "microphone"]);
        assert_eq!(r.for_string("/tmp/clip.mp4").map(|k| k.kind()), Some("file"));
        assert_eq!(r.for_string("clip.mp4").map(|k| k.kind()), Some("file"));
        assert_eq!(r.for_string("https://example.com/a.mp4").map(|k| k.kind()), Some("file"));
        assert_eq!(r.for_string("RTSP://cam/1").map(|k| k.kind()), Some("rtsp"));
        assert!(r.for_string("concat:/etc/passwd|x").is_none(), "no kind claims a pseudo-protocol");
        assert_eq!(scheme_of("C:"), Some("C"));
        assert_eq!(scheme_of("./a:b"), None);
    }

    #[test]
    fn transports_and_options_are_checked_before_any_io() {
        assert_eq!("udp_multicast".parse::<RtspTransport>(), Ok(RtspTransport::UdpMulticast));
        assert!(matches!("sctp".parse::<RtspTransport>(), Err(SourceError::InvalidArgument { name: "transport", .. })));
        assert!(SourceOptions { fps: 0, ..SourceOptions::default() }.validate().is_err());
        assert!(SourceOptions { width: 640, ..SourceOptions::default() }.validate().is_err());
        assert!(SourceOptions { width: 9000, height: 9000, ..SourceOptions::default() }.validate().is_err());
        SourceOptions { width: 640, height: 480, ..SourceOptions::default() }.validate().unwrap();
    }
}
