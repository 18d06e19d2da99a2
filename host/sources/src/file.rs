//! `from_file`: media files — a path, a `file:` URL, an http(s) URL the
//! policy allows, or a caller's reader — decoded by FFmpeg, looped or sought
//! on request.

use std::io::{Read, Seek};
use std::time::Duration;

use super::error::{SourceError, shown};
use super::ffmpeg::feeder::{self, FeedConfig};
use super::ffmpeg::open::Target;
use super::player::Player;
use super::policy::SourcePolicy;
use super::registry::{BoxFuture, Source, SourceOptions, scheme_of};

/// Reads of a local file or URL that take longer than this end it.
const FILE_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// The file source kind (`file`, `http`, `https`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileSource;

impl Source for FileSource {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["file", "http", "https"]
    }

    fn open<'a>(
        &'a self,
        location: &'a str,
        options: &'a SourceOptions,
        policy: &'a SourcePolicy,
    ) -> BoxFuture<'a, Result<Player, SourceError>> {
        Box::pin(async move {
            let scheme = scheme_of(location).map(str::to_ascii_lowercase);
            let (label, target) = match scheme.as_deref() {
                Some("http" | "https") => {
                    let checked = policy.check_url(location, &["http", "https"]).await?;
                    let mut opts = checked.options.pairs();
                    if checked.scheme == "http" {
                        // FFmpeg connects to the checked address; the server
                        // still sees the name it was asked for.
                        opts.push(("headers".into(), format!("Host: {}\r\n", checked.host)));
                    }
                    (checked.label, Target::Url { url: checked.connect_url, options: opts })
                }
                Some("rtsp" | "rtsps") => {
                    return super::rtsp::RtspSource.open(location, options, policy).await;
                }
                _ => {
                    let checked = policy.check_file(location)?;
                    (shown(location), Target::Url { url: checked.url, options: checked.options.pairs() })
                }
            };
            let config = FeedConfig {
                label,
                live: false,
                looping: options.looping,
                reconnect: false,
                open_timeout: options.open_timeout.max(Duration::from_secs(10)),
                read_timeout: FILE_READ_TIMEOUT,
                video_size: None,
            };
            feeder::start(target, config).await
        })
    }
}

/// A media file read through `reader` (anything `Read + Seek`: an
/// in-memory buffer, a decrypted stream): the seed's "file-like". The same
/// demuxers as local files (no playlists).
pub async fn from_reader<R: Read + Seek + Send + 'static>(reader: R, looping: bool) -> Result<Player, SourceError> {
    let io = ffmpeg_next::format::context::StreamIo::from_read_seek(reader)
        .map_err(|e| SourceError::Open { location: "<reader>".into(), reason: e.to_string() })?;
    let opts = SourcePolicy::reader_options().pairs();
    let config = FeedConfig {
        label: "<reader>".into(),
        live: false,
        looping,
        reconnect: false,
        open_timeout: Duration::from_secs(10),
        read_timeout: FILE_READ_TIMEOUT,
        video_size: None,
    };
    feeder::start(Target::Reader { io: Some(io), options: opts }, config).await
}
