//! Base-URL validation and the connect URL (the credential rides the query).

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::error::ConfigError;

/// Validates a base URL and returns its origin (`scheme://host[:port]`).
///
/// `wss:` is required, except `ws:` for `localhost`, `127.0.0.1` and `::1`; the URL
/// must have no path, query or fragment (the client appends `/v1` itself).
pub fn validate_base_url(base: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(base).map_err(|e| ConfigError::Url(format!("{base:?} is not an absolute URL: {e}")))?;
    let host = url.host_str().ok_or_else(|| ConfigError::Url(format!("{base:?} has no host")))?;
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    match url.scheme() {
        "wss" => {}
        "ws" if local => {}
        "ws" => return Err(ConfigError::Url("insecure ws: is only allowed for localhost; use wss:".into())),
        other => return Err(ConfigError::Url(format!("scheme must be wss: (or ws: for localhost), got {other}:"))),
    }
    if !matches!(url.path(), "" | "/") {
        return Err(ConfigError::Url(format!("url must not include a path (got {}); /v1 is appended", url.path())));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::Url("url must not include a query or fragment".into()));
    }
    let mut origin = format!("{}://{}", url.scheme(), host);
    if let Some(port) = url.port() {
        origin.push_str(&format!(":{port}"));
    }
    Ok(origin)
}

/// `origin/v1?key=…` or `origin/v1?token=…`.
pub fn connect_url(origin: &str, is_token: bool, value: &str) -> String {
    let param = if is_token { "token" } else { "key" };
    format!("{origin}/v1?{param}={}", utf8_percent_encode(value, NON_ALPHANUMERIC))
}

/// Replaces `key=`/`token=` query values with `***` so errors and logs never
/// carry a credential.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = ["key=", "token="]
        .iter()
        .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
        .filter(|(i, _)| *i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&'))
        .min()
    {
        let (i, len) = pos;
        out.push_str(&rest[..i + len]);
        out.push_str("***");
        let tail = &rest[i + len..];
        let end = tail.find(|c: char| c == '&' || c.is_whitespace() || c == '"' || c == '\'').unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(validate_base_url("ws://127.0.0.1:8787").unwrap(), "ws://127.0.0.1:8787");
        assert_eq!(validate_base_url("ws://localhost:1/").unwrap(), "ws://localhost:1");
        assert_eq!(validate_base_url("ws://[::1]:9").unwrap(), "ws://[::1]:9");
        assert_eq!(validate_base_url("wss://rms.metered.ca").unwrap(), "wss://rms.metered.ca");
        for bad in ["ws://example.com", "http://127.0.0.1", "wss://h/v1", "wss://h?x=1", "wss://h#f", "nope"] {
            assert!(validate_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_urls_encode_and_scrub() {
        let u = connect_url("ws://127.0.0.1:1", false, "pk_live a&b");
        assert_eq!(u, "ws://127.0.0.1:1/v1?key=pk%5Flive%20a%26b");
        assert_eq!(scrub(&u), "ws://127.0.0.1:1/v1?key=***");
        assert_eq!(scrub("failed GET ws://h/v1?token=eyJ.abc.def 401"), "failed GET ws://h/v1?token=*** 401");
        assert_eq!(scrub("x?key=a&token=b&c=1"), "x?key=***&token=***&c=1");
        assert_eq!(scrub("monkey=1"), "monkey=1");
    }
}
