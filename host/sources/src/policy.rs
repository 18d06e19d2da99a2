//! [`SourcePolicy`]: what a source string may open. A source string is
//! hostile until validated: this module validates it before any I/O and
//! hands FFmpeg only what it checked — a canonical `file:` path under an
//! allowed root, or a URL whose host is allow-listed and whose resolved
//! address is the one FFmpeg connects to — with FFmpeg's own
//! `protocol_whitelist` and `format_whitelist` set so that nothing inside
//! the media (a playlist, a reference) reaches another protocol.
//!
//! Two presets: [`SourcePolicy::strict`] (tenants and guests: nothing until
//! configured) and [`SourcePolicy::operator`] (the operator's own CLI: plain
//! paths, http(s)/rtsp(s) URLs, devices; pseudo-protocols refused unless
//! explicitly allowed).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};

use super::error::{Rule, SourceError, shown};
use super::registry::scheme_of;

/// The longest source string accepted.
pub const MAX_SOURCE_LEN: usize = 4096;

/// Containers a file or http(s) source may be (FFmpeg demuxer names; a
/// demuxer with several names matches on any). No playlists (`hls`,
/// `concat`, `ffconcat`), no image sequences (`image2` expands patterns
/// into other files), no `lavfi`, `sdp` or `ffmetadata`.
pub const FILE_FORMATS: &str = "mov,matroska,webm,wav,w64,mp3,ogg,flac,aac,h264,hevc,mpegts,avi,flv,ivf,m4v,aiff,caf,au,mpeg,amr,ac3,eac3,dts,mjpeg,yuv4mpegpipe,asf,rm,nut";

/// Schemes FFmpeg would treat as a protocol that no source kind reads:
/// named in refusals (any other unknown scheme is refused too).
pub const PSEUDO_PROTOCOLS: [&str; 24] = [
    "concat", "concatf", "data", "subfile", "pipe", "fd", "crypto", "tee", "cache", "async", "hls", "md5", "unix",
    "tcp", "udp", "rtp", "srtp", "sctp", "ftp", "gopher", "rtmp", "mmsh", "mmst", "ipfs",
];

/// The options every FFmpeg open of a checked source carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfmpegOptions {
    /// `protocol_whitelist`: the protocols this open may use, nested opens
    /// included (`None` for a caller's reader: no protocol at all).
    pub protocol_whitelist: Option<String>,
    /// `format_whitelist`: the demuxers it may probe into.
    pub format_whitelist: Option<String>,
}

impl FfmpegOptions {
    /// As dictionary entries.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if let Some(p) = &self.protocol_whitelist {
            v.push(("protocol_whitelist".to_owned(), p.clone()));
        }
        if let Some(f) = &self.format_whitelist {
            v.push(("format_whitelist".to_owned(), f.clone()));
        }
        v
    }
}

/// A local file the policy allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedFile {
    /// The canonical path (no `..`, no symbolic link).
    pub path: PathBuf,
    /// What FFmpeg opens (`file:` and the canonical path, or an explicitly
    /// allowed pseudo-protocol string as given).
    pub url: String,
    /// Whitelists.
    pub options: FfmpegOptions,
}

/// A network URL the policy allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    /// The scheme, lower case.
    pub scheme: String,
    /// The host as written (lower case).
    pub host: String,
    /// The address checked, which FFmpeg connects to.
    pub address: SocketAddr,
    /// What FFmpeg opens: the URL with its host replaced by the checked
    /// address (so a second lookup cannot answer differently), except for
    /// TLS schemes, whose certificate and SNI need the name.
    pub connect_url: String,
    /// The URL as shown in errors and logs (password hidden).
    pub label: String,
    /// Whitelists.
    pub options: FfmpegOptions,
}

/// Which hosts network sources may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hosts {
    /// Any host (still subject to the internal-address rule).
    Any,
    /// Only these: exact names or IP literals, or `*.suffix` patterns.
    Only(BTreeSet<String>),
}

/// Which files sources may read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Files {
    /// None.
    None,
    /// Any path the process can read (the operator's own CLI).
    Any,
    /// Only under these (canonical) directories.
    Under(Vec<PathBuf>),
}

/// What a source string may open: files under roots, network schemes and
/// hosts, internal addresses, devices, explicitly allowed pseudo-protocols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePolicy {
    files: Files,
    schemes: BTreeSet<String>,
    hosts: Hosts,
    allow_internal: bool,
    devices: bool,
    protocols: BTreeSet<String>,
}

/// A policy as configured (e.g. a tenant's section of the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcePolicyConfig {
    /// Directories files may be read from (none: no files).
    pub roots: Vec<PathBuf>,
    /// Network schemes allowed (`http`, `https`, `rtsp`, `rtsps`).
    pub schemes: Vec<String>,
    /// Hosts network sources may reach (`cam.example.com`, `*.example.com`,
    /// an IP literal); empty with schemes set: any public host.
    pub hosts: Vec<String>,
    /// Allow loopback, private and link-local addresses.
    pub allow_internal: bool,
    /// Allow local devices (cameras, microphones, screens).
    pub devices: bool,
}

const NETWORK_SCHEMES: [&str; 4] = ["http", "https", "rtsp", "rtsps"];

impl SourcePolicy {
    /// Nothing: no files, no network, no devices. Tenants and guests start
    /// here; configure with the `with_*` / `allow_*` methods.
    pub fn strict() -> Self {
        Self {
            files: Files::None,
            schemes: BTreeSet::new(),
            hosts: Hosts::Any,
            allow_internal: false,
            devices: false,
            protocols: BTreeSet::new(),
        }
    }

    /// The operator's own CLI: any readable path, http(s) and rtsp(s) URLs
    /// to any host (internal ones included: the operator's cameras are on
    /// the LAN), devices. Pseudo-protocols stay refused unless
    /// [`allow_protocol`](Self::allow_protocol) names them.
    pub fn operator() -> Self {
        Self {
            files: Files::Any,
            schemes: NETWORK_SCHEMES.iter().map(|s| (*s).to_owned()).collect(),
            hosts: Hosts::Any,
            allow_internal: true,
            devices: true,
            protocols: BTreeSet::new(),
        }
    }

    /// A configured (strict) policy. Roots that do not exist are an error.
    pub fn from_config(config: &SourcePolicyConfig) -> Result<Self, SourceError> {
        let mut p = Self::strict();
        for root in &config.roots {
            p = p.with_root(root)?;
        }
        for scheme in &config.schemes {
            p = p.allow_scheme(scheme)?;
        }
        for host in &config.hosts {
            p = p.allow_host(host);
        }
        Ok(p.allow_internal(config.allow_internal).allow_devices(config.devices))
    }

    /// Files may be read under `root` (canonicalized now; replaces "any
    /// path").
    pub fn with_root(mut self, root: impl AsRef<Path>) -> Result<Self, SourceError> {
        let root = root.as_ref();
        let canonical = root.canonicalize().map_err(|e| SourceError::InvalidArgument {
            name: "source root",
            value: shown(&root.to_string_lossy()),
            expected: if e.kind() == std::io::ErrorKind::NotFound {
                "an existing directory"
            } else {
                "a readable directory"
            },
        })?;
        if !canonical.is_dir() {
            return Err(SourceError::InvalidArgument {
                name: "source root",
                value: shown(&root.to_string_lossy()),
                expected: "a directory",
            });
        }
        match &mut self.files {
            Files::Under(roots) => roots.push(canonical),
            other => *other = Files::Under(vec![canonical]),
        }
        Ok(self)
    }

    /// Allows network scheme `scheme` (`http`, `https`, `rtsp`, `rtsps`).
    pub fn allow_scheme(mut self, scheme: &str) -> Result<Self, SourceError> {
        let s = scheme.to_ascii_lowercase();
        if !NETWORK_SCHEMES.contains(&s.as_str()) {
            return Err(SourceError::InvalidArgument {
                name: "scheme",
                value: shown(scheme),
                expected: "one of http, https, rtsp, rtsps",
            });
        }
        self.schemes.insert(s);
        Ok(self)
    }

    /// Network sources may reach `host` (an exact name, an IP literal, or
    /// `*.example.com` for its subdomains). The first call turns "any host"
    /// into an allow-list.
    pub fn allow_host(mut self, host: &str) -> Self {
        let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let h = h.trim_start_matches('[').trim_end_matches(']').to_owned();
        match &mut self.hosts {
            Hosts::Only(set) => {
                set.insert(h);
            }
            other => *other = Hosts::Only(BTreeSet::from([h])),
        }
        self
    }

    /// Whether loopback, private, link-local and other internal addresses
    /// may be reached.
    pub fn allow_internal(mut self, allow: bool) -> Self {
        self.allow_internal = allow;
        self
    }

    /// Whether local devices may be opened.
    pub fn allow_devices(mut self, allow: bool) -> Self {
        self.devices = allow;
        self
    }

    /// Allows one FFmpeg pseudo-protocol (`concat`, `subfile`, …) for the
    /// operator's own use: its strings go to FFmpeg as written, with only
    /// that protocol and `file` whitelisted.
    pub fn allow_protocol(mut self, protocol: &str) -> Self {
        self.protocols.insert(protocol.to_ascii_lowercase());
        self
    }

    /// Whether files may be read at all.
    pub fn allows_files(&self) -> bool {
        !matches!(self.files, Files::None)
    }

    /// The options for a caller's reader: containers only, no protocol.
    pub fn reader_options() -> FfmpegOptions {
        FfmpegOptions { protocol_whitelist: None, format_whitelist: Some(FILE_FORMATS.to_owned()) }
    }

    /// Local devices: allowed or refused (`kind` names the device kind in
    /// the refusal).
    pub fn check_device(&self, kind: &str) -> Result<(), SourceError> {
        if self.devices { Ok(()) } else { Err(SourceError::refused(kind, Rule::DevicesNotAllowed)) }
    }

    /// Checks a local file (a path or a `file:` URL).
    pub fn check_file(&self, location: &str) -> Result<CheckedFile, SourceError> {
        well_formed(location)?;
        let refuse = |rule| SourceError::refused(location, rule);
        let path: PathBuf = match scheme_of(location).map(str::to_ascii_lowercase) {
            // `C:` style single letters are not schemes on this platform,
            // but nothing is gained by guessing: a path is taken literally.
            Some(s) if s == "file" => file_url_path(location).ok_or_else(|| {
                refuse(Rule::Malformed("a file: URL names a local absolute path (file:///path or file:/path)".into()))
            })?,
            Some(s) if self.protocols.contains(&s) => {
                // Explicitly allowed by the operator: as written.
                return Ok(CheckedFile {
                    path: PathBuf::new(),
                    url: location.to_owned(),
                    options: FfmpegOptions {
                        protocol_whitelist: Some(format!("{s},file")),
                        format_whitelist: Some(FILE_FORMATS.to_owned()),
                    },
                });
            }
            Some(s) if NETWORK_SCHEMES.contains(&s.as_str()) => return Err(refuse(Rule::SchemeNotAllowed(s))),
            Some(s) if s.len() > 1 => return Err(refuse(Rule::Scheme(s))),
            _ => PathBuf::from(location),
        };
        let roots = match &self.files {
            Files::None => return Err(refuse(Rule::FilesNotAllowed)),
            Files::Any => None,
            Files::Under(roots) => Some(roots),
        };
        if roots.is_some() && path.components().any(|c| c == Component::ParentDir) {
            return Err(refuse(Rule::OutsideRoots));
        }
        let joined = match (roots, path.is_absolute()) {
            (Some(roots), false) => roots[0].join(&path),
            _ => path,
        };
        let canonical = joined.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound { location: shown(location) },
            // A path outside the roots is refused the same way whether or
            // not it exists (no probing of the host's files).
            _ if roots.is_some() => refuse(Rule::OutsideRoots),
            _ => SourceError::Open { location: shown(location), reason: e.to_string() },
        })?;
        if let Some(roots) = roots
            && !roots.iter().any(|r| canonical.starts_with(r))
        {
            return Err(refuse(Rule::OutsideRoots));
        }
        let meta = std::fs::metadata(&canonical)
            .map_err(|e| SourceError::Open { location: shown(location), reason: e.to_string() })?;
        if !meta.is_file() {
            return Err(refuse(Rule::NotRegularFile));
        }
        let Some(text) = canonical.to_str() else {
            return Err(refuse(Rule::Malformed("the path is not UTF-8".into())));
        };
        Ok(CheckedFile {
            url: format!("file:{text}"),
            path: canonical,
            options: FfmpegOptions {
                protocol_whitelist: Some("file".to_owned()),
                format_whitelist: Some(FILE_FORMATS.to_owned()),
            },
        })
    }

    /// Checks a network URL whose scheme must be one of `schemes` (the
    /// kind's) and allowed by this policy; resolves its host and checks the
    /// address FFmpeg will connect to.
    pub async fn check_url(&self, location: &str, schemes: &[&str]) -> Result<CheckedUrl, SourceError> {
        let (mut url, scheme, host, port) = self.check_url_syntax(location, schemes)?;
        let label = redacted(&url);
        let refuse = |rule| SourceError::Refused { location: label.clone(), rule };
        let addresses = resolve(&host, port).await.map_err(|_| SourceError::NotFound { location: label.clone() })?;
        let Some(first) = addresses.first().copied() else {
            return Err(SourceError::NotFound { location: label.clone() });
        };
        if !self.allow_internal
            && let Some(bad) = addresses.iter().find(|a| is_internal(a.ip()))
        {
            return Err(refuse(Rule::InternalAddress { host: host.clone(), address: bad.ip() }));
        }
        let tls = matches!(scheme.as_str(), "https" | "rtsps");
        if !tls && url.set_ip_host(first.ip()).is_err() {
            return Err(refuse(Rule::Malformed("the URL cannot carry an address".into())));
        }
        let protocols = match scheme.as_str() {
            "http" => "http,tcp",
            "https" => "https,tls,tcp",
            "rtsp" => "rtsp,rtp,srtp,udp,tcp",
            _ => "rtsps,rtsp,rtp,srtp,udp,tcp,tls",
        };
        let formats = if scheme.starts_with("rtsp") { "rtsp".to_owned() } else { FILE_FORMATS.to_owned() };
        Ok(CheckedUrl {
            connect_url: url.to_string(),
            label,
            scheme,
            host,
            address: first,
            options: FfmpegOptions { protocol_whitelist: Some(protocols.to_owned()), format_whitelist: Some(formats) },
        })
    }

    /// The checks of [`check_url`](Self::check_url) that need no lookup.
    fn check_url_syntax(
        &self,
        location: &str,
        schemes: &[&str],
    ) -> Result<(url::Url, String, String, u16), SourceError> {
        well_formed(location)?;
        let refuse = |rule| SourceError::refused(location, rule);
        let scheme = scheme_of(location)
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| refuse(Rule::Malformed("not a URL".into())))?;
        if !NETWORK_SCHEMES.contains(&scheme.as_str()) {
            return Err(refuse(Rule::Scheme(scheme)));
        }
        if !schemes.contains(&scheme.as_str()) || !self.schemes.contains(&scheme) {
            return Err(refuse(Rule::SchemeNotAllowed(scheme)));
        }
        let url = url::Url::parse(location).map_err(|e| refuse(Rule::Malformed(format!("not a URL: {e}"))))?;
        if url.fragment().is_some() {
            return Err(refuse(Rule::UrlPart("a fragment")));
        }
        if scheme.starts_with("http") && (!url.username().is_empty() || url.password().is_some()) {
            return Err(refuse(Rule::UrlPart("credentials (http)")));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(refuse(Rule::Malformed("the URL has no host".into()))),
        };
        if host.is_empty() {
            return Err(refuse(Rule::Malformed("the URL has no host".into())));
        }
        if let Hosts::Only(allowed) = &self.hosts
            && !host_allowed(allowed, &host)
        {
            return Err(SourceError::Refused { location: redacted(&url), rule: Rule::HostNotAllowed(host) });
        }
        let port = url.port_or_known_default().unwrap_or(match scheme.as_str() {
            "rtsp" => 554,
            "rtsps" => 322,
            _ => 443,
        });
        Ok((url, scheme, host, port))
    }
}

/// Empty, too long, control characters or NUL: refused as malformed.
fn well_formed(location: &str) -> Result<(), SourceError> {
    let why = if location.trim().is_empty() {
        "empty"
    } else if location.len() > MAX_SOURCE_LEN {
        "longer than 4096 bytes"
    } else if location.chars().any(char::is_control) {
        "control characters or NUL"
    } else {
        return Ok(());
    };
    Err(SourceError::refused(location, Rule::Malformed(why.to_owned())))
}

/// The local path of a `file:` URL: `file:///abs` (percent-decoded, host
/// empty or `localhost`) or `file:/abs` taken literally.
fn file_url_path(location: &str) -> Option<PathBuf> {
    let rest = &location[5..];
    if rest.starts_with("//") {
        return url::Url::parse(location).ok()?.to_file_path().ok();
    }
    rest.starts_with('/').then(|| PathBuf::from(rest))
}

fn host_allowed(allowed: &BTreeSet<String>, host: &str) -> bool {
    allowed.iter().any(|a| match a.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1 && host.ends_with(suffix) && {
                let cut = host.len() - suffix.len();
                host.as_bytes()[cut - 1] == b'.'
            }
        }
        None => a == host,
    })
}

/// The URL as shown: the password replaced by `***`, then [`shown`].
pub(crate) fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    shown(u.as_str())
}

async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok(tokio::net::lookup_host((host, port)).await?.collect())
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, broadcast,
/// multicast, documentation and reserved addresses; IPv4 inside IPv6
/// (mapped, NAT64) is judged as IPv4.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => internal_v4(a),
        IpAddr::V6(a) => internal_v6(a),
    }
}

fn internal_v4(a: Ipv4Addr) -> bool {
    let [o0, o1, ..] = a.octets();
    a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o0 == 0
        || (o0 == 100 && (64..128).contains(&o1)) // shared address space
        || (o0 == 192 && o1 == 0 && a.octets()[2] == 0) // IETF protocol assignments
        || (o0 == 198 && (o1 == 18 || o1 == 19)) // benchmarking
        || o0 >= 240 // reserved
}

fn internal_v6(a: Ipv6Addr) -> bool {
    if let Some(v4) = a.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let s = a.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return internal_v4(v4);
    }
    a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || s[0] == 0x2001 && s[1] == 0x0db8 // documentation
        || (s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(e: SourceError) -> Rule {
        match e {
            SourceError::Refused { rule, .. } => rule,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal(a.parse().unwrap()), "{a} is internal");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert!(!is_internal(a.parse().unwrap()), "{a} is public");
        }
    }

    #[test]
    fn pseudo_protocols_and_unknown_schemes_are_refused_by_name() {
        let p = SourcePolicy::operator();
        for s in PSEUDO_PROTOCOLS {
            let e = p.check_file(&format!("{s}:/etc/passwd")).unwrap_err();
            assert_eq!(rule(e), Rule::Scheme(s.to_owned()), "{s}");
        }
        assert_eq!(rule(p.check_file("concat:/etc/passwd|/etc/hosts").unwrap_err()), Rule::Scheme("concat".into()));
        assert_eq!(
            rule(p.check_file("SubFile:,,start,0,end,0,,:/etc/passwd").unwrap_err()),
            Rule::Scheme("subfile".into())
        );
        // Explicitly allowed, it passes with only that protocol and file.
        let c = SourcePolicy::operator().allow_protocol("concat").check_file("concat:a|b").unwrap();
        assert_eq!(c.options.protocol_whitelist.as_deref(), Some("concat,file"));
    }

    #[test]
    fn malformed_strings_are_refused() {
        let p = SourcePolicy::operator();
        for s in ["", "   ", "a\0b", "clip\n.mp4", &"x".repeat(MAX_SOURCE_LEN + 1)] {
            assert!(matches!(rule(p.check_file(s).unwrap_err()), Rule::Malformed(_)), "{s:?}");
        }
    }

    #[test]
    fn files_stay_under_their_roots() {
        let base = std::env::temp_dir().join(format!("metered-policy-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.wav"), b"x").unwrap();
        std::fs::write(base.join("secret.wav"), b"x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("secret.wav"), root.join("escape.wav")).unwrap();
        let p = SourcePolicy::strict().with_root(&root).unwrap();
        let ok = p.check_file("sub/a.wav").unwrap();
        assert_eq!(ok.path, root.canonicalize().unwrap().join("sub/a.wav"));
        assert!(ok.url.starts_with("file:/"));
        assert_eq!(ok.options.protocol_whitelist.as_deref(), Some("file"));
        p.check_file(&format!("file://{}", root.join("sub/a.wav").display())).unwrap();
        assert_eq!(rule(p.check_file("../secret.wav").unwrap_err()), Rule::OutsideRoots);
        assert_eq!(rule(p.check_file("sub/../../secret.wav").unwrap_err()), Rule::OutsideRoots);
        assert_eq!(rule(p.check_file(base.join("secret.wav").to_str().unwrap()).unwrap_err()), Rule::OutsideRoots);
        assert_eq!(rule(p.check_file("escape.wav").unwrap_err()), Rule::OutsideRoots);
        assert_eq!(rule(p.check_file("/etc/passwd").unwrap_err()), Rule::OutsideRoots);
        assert_eq!(rule(p.check_file("sub").unwrap_err()), Rule::NotRegularFile);
        assert!(matches!(p.check_file("sub/missing.wav"), Err(SourceError::NotFound { .. })));
        assert_eq!(rule(SourcePolicy::strict().check_file("a.wav").unwrap_err()), Rule::FilesNotAllowed);
        assert_eq!(rule(SourcePolicy::operator().check_file("/dev/null").unwrap_err()), Rule::NotRegularFile);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[tokio::test]
    async fn urls_need_an_allowed_scheme_host_and_address() {
        let tenant =
            SourcePolicy::strict().allow_scheme("rtsp").unwrap().allow_host("*.cams.test").allow_host("127.0.0.1");
        let r = |e| rule(e);
        assert_eq!(
            r(tenant.check_url("http://a.cams.test/x", &["http", "https"]).await.unwrap_err()),
            Rule::SchemeNotAllowed("http".into())
        );
        assert_eq!(
            r(tenant.check_url("rtsp://evil.test/x", &["rtsp"]).await.unwrap_err()),
            Rule::HostNotAllowed("evil.test".into())
        );
        assert_eq!(
            r(tenant.check_url("rtsp://cams.test.evil/x", &["rtsp"]).await.unwrap_err()),
            Rule::HostNotAllowed("cams.test.evil".into())
        );
        // Allow-listed but internal.
        assert!(matches!(
            r(tenant.check_url("rtsp://127.0.0.1:8554/x", &["rtsp"]).await.unwrap_err()),
            Rule::InternalAddress { .. }
        ));
        // A name that resolves to loopback is judged by its address.
        let any = SourcePolicy::strict().allow_scheme("rtsp").unwrap();
        assert!(matches!(
            r(any.check_url("rtsp://localhost:8554/x", &["rtsp"]).await.unwrap_err()),
            Rule::InternalAddress { .. }
        ));
        assert!(matches!(
            r(any.check_url("rtsp://[::ffff:10.0.0.1]/x", &["rtsp"]).await.unwrap_err()),
            Rule::InternalAddress { .. }
        ));
        assert_eq!(r(any.check_url("rtsp://h/x#frag", &["rtsp"]).await.unwrap_err()), Rule::UrlPart("a fragment"));
        // The operator reaches its LAN; FFmpeg gets the checked address.
        let op = SourcePolicy::operator();
        let c = op.check_url("rtsp://user:pw@localhost:8554/cam", &["rtsp"]).await.unwrap();
        assert!(c.address.ip().is_loopback());
        assert!(c.connect_url.starts_with("rtsp://user:pw@127.0.0.1:8554/") || c.connect_url.contains("[::1]"));
        assert!(!c.label.contains("pw"), "{}", c.label);
        assert_eq!(c.options.format_whitelist.as_deref(), Some("rtsp"));
        assert!(!c.options.protocol_whitelist.as_deref().unwrap().contains("file"));
    }

    #[test]
    fn config_builds_a_strict_policy() {
        let cfg: SourcePolicyConfig = toml_like();
        let p = SourcePolicy::from_config(&cfg).unwrap();
        assert!(!p.allows_files());
        assert!(p.check_device("camera").is_err());
        assert!(SourcePolicy::from_config(&SourcePolicyConfig { schemes: vec!["ftp".into()], ..cfg }).is_err());
    }

    fn toml_like() -> SourcePolicyConfig {
        SourcePolicyConfig { schemes: vec!["rtsp".into()], hosts: vec!["cam.test".into()], ..Default::default() }
    }
}
