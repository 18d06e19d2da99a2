//! [`SourceError`]: why a source could not be opened or kept playing — each
//! refusal names the rule that refused it.

use std::fmt;
use std::time::Duration;

/// Longest source string shown back in an error (the rest is cut).
const SHOWN: usize = 160;

/// A source string as shown in errors and logs: truncated, control
/// characters escaped (it is hostile until validated).
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(SHOWN).flat_map(char::escape_default).collect();
    if s.chars().count() > SHOWN {
        out.push('…');
    }
    out
}

/// The policy rule a source string broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// The string is empty, too long, or has control characters or NUL.
    Malformed(String),
    /// An FFmpeg pseudo-protocol (`concat:`, `data:`, `subfile:`, `pipe:`,
    /// `fd:`, `crypto:`, `tee:`, …) or another scheme no source reads.
    Scheme(String),
    /// A scheme this policy does not allow (e.g. `http` for a tenant without
    /// network sources).
    SchemeNotAllowed(String),
    /// A local file while this policy allows no files.
    FilesNotAllowed,
    /// A path outside every configured root (after `..` and symbolic links
    /// are resolved).
    OutsideRoots,
    /// Not a regular file (a directory, device node, socket or pipe).
    NotRegularFile,
    /// A host not on the allow-list.
    HostNotAllowed(String),
    /// The host resolves to a loopback, private, link-local or otherwise
    /// internal address this policy does not allow.
    InternalAddress {
        /// The host as written.
        host: String,
        /// The address it resolved to.
        address: std::net::IpAddr,
    },
    /// Local devices (cameras, microphones, screens) are not allowed.
    DevicesNotAllowed,
    /// A URL with credentials, a fragment or another part sources never take.
    UrlPart(&'static str),
    /// FFmpeg refused a container or protocol not on this source's
    /// whitelist: the media tried to reach further (a playlist pointing at
    /// `file:` or another host, an image sequence, a concat script).
    NotWhitelisted,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Malformed(why) => write!(f, "malformed source string: {why}"),
            Rule::Scheme(s) => write!(f, "`{s}:` is not a source scheme (FFmpeg pseudo-protocols are refused)"),
            Rule::SchemeNotAllowed(s) => write!(f, "`{s}` sources are not allowed by this policy"),
            Rule::FilesNotAllowed => f.write_str("local files are not allowed by this policy"),
            Rule::OutsideRoots => f.write_str("the path is outside the allowed directories"),
            Rule::NotRegularFile => f.write_str("not a regular file"),
            Rule::HostNotAllowed(h) => write!(f, "host {h:?} is not on the allow-list"),
            Rule::InternalAddress { host, address } => {
                write!(f, "host {host:?} resolves to {address}, an internal address this policy does not allow")
            }
            Rule::DevicesNotAllowed => f.write_str("local devices are not allowed by this policy"),
            Rule::UrlPart(part) => write!(f, "source URLs may not carry {part}"),
            Rule::NotWhitelisted => f.write_str(
                "the media uses a container or protocol this source may not (a playlist, a reference to another file or host)",
            ),
        }
    }
}

/// What kind of device problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceProblem {
    /// No such device.
    Missing,
    /// The device exists but another process holds it.
    Busy,
    /// The device cannot give what was asked (size, rate, format), or this
    /// FFmpeg / host has no backend for it.
    Unsupported,
}

impl fmt::Display for DeviceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceProblem::Missing => "not found",
            DeviceProblem::Busy => "busy",
            DeviceProblem::Unsupported => "unsupported",
        })
    }
}

/// Why a source could not be opened, or stopped playing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source policy refused the string (before any I/O).
    #[error("source {location:?} refused: {rule}")]
    Refused {
        /// The string, as shown (truncated, escaped).
        location: String,
        /// The rule it broke.
        rule: Rule,
    },
    /// An argument other than the source string is invalid (an RTSP
    /// transport other than `tcp`, `udp`, `udp_multicast`, `http`; a frame
    /// rate of 0; …). Checked before any I/O.
    #[error("invalid {name} {value:?}: expected {expected}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// Its value, as shown.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// No such file, or the host name does not resolve.
    #[error("source {location:?} not found")]
    NotFound {
        /// The string, as shown.
        location: String,
    },
    /// The open or a read did not finish within its bound.
    #[error("source {location:?} timed out after {after:?}")]
    Timeout {
        /// The string, as shown.
        location: String,
        /// The bound.
        after: Duration,
    },
    /// FFmpeg (or the device backend) could not open or read it: not media,
    /// truncated, corrupt, refused connection.
    #[error("cannot open {location:?}: {reason}")]
    Open {
        /// The string, as shown.
        location: String,
        /// Why, in FFmpeg's words.
        reason: String,
    },
    /// The media is there but unusable: no audio or video stream, an
    /// undecodable codec, absurd dimensions or channel counts.
    #[error("unsupported media in {location:?}: {reason}")]
    Unsupported {
        /// The string, as shown.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A device is missing, busy or unsupported.
    #[error("device {device:?} {problem}: {reason}")]
    Device {
        /// The device as named.
        device: String,
        /// What kind of problem.
        problem: DeviceProblem,
        /// Details.
        reason: String,
    },
    /// No source kind is registered for this string's scheme.
    #[error("no source kind handles {location:?}")]
    UnknownKind {
        /// The string, as shown.
        location: String,
    },
    /// The operation needs a seekable source (a looping or seeking live
    /// stream, a non-seekable reader).
    #[error("{location:?} is not seekable")]
    NotSeekable {
        /// The string, as shown.
        location: String,
    },
    /// The player was stopped.
    #[error("the player was stopped")]
    Stopped,
}

impl SourceError {
    /// A refusal of `source` by `rule`.
    pub fn refused(source: &str, rule: Rule) -> Self {
        SourceError::Refused { location: shown(source), rule }
    }
}
