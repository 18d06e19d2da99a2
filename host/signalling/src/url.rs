//! Base-URL validation and the connect URL (the credential rides the query).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::error::ConfigError;

/// Validates a base URL and returns its origin (`scheme://host[:port]`).
///
/// `wss:` is required, except `ws:` for `localhost`, `127.0.0.1` and `::1`; the URL
/// must have no path, query or fragment (the client appends `/v1` itself).
pub fn validate_base_url(base: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(base)
        .map_err(|e| ConfigError::Url(format!("{:?} is not an absolute URL: {e}", scrub(base))))?;
    let host = url.host_str().ok_or_else(|| ConfigError::Url(format!("{:?} has no host", scrub(base))))?;
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

/// Everything but RFC 3986 unreserved characters is escaped (as Python's
/// `quote(value, safe="")` does).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `origin/v1?key=…` or `origin/v1?token=…`.
pub fn connect_url(origin: &str, is_token: bool, value: &str) -> String {
    let param = if is_token { "token" } else { "key" };
    format!("{origin}/v1?{param}={}", utf8_percent_encode(value, QUERY_VALUE))
}

/// Replaces the values of `?key=`/`&key=`/`?token=`/`&token=` (any case) with
/// `***`, so errors and logs never carry a credential. Idempotent.
pub fn scrub(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_param = matches!(bytes[i], b'?' | b'&');
        let name_len = if !at_param {
            0
        } else if starts_with_ignore_case(&bytes[i + 1..], b"key=") {
            4
        } else if starts_with_ignore_case(&bytes[i + 1..], b"token=") {
            6
        } else {
            0
        };
        if name_len == 0 {
            i += 1;
            continue;
        }
        let value_start = i + 1 + name_len;
        let value_end = bytes[value_start..]
            .iter()
            .position(|b| matches!(b, b'&' | b'"' | b'\'') || b.is_ascii_whitespace())
            .map_or(bytes.len(), |n| value_start + n);
        // Both ends sit on ASCII bytes (or the end), so they are char boundaries.
        out.push_str(&text[copied..value_start]);
        out.push_str("***");
        copied = value_end;
        i = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && haystack[..prefix.len()].eq_ignore_ascii_case(prefix)
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
        assert_eq!(u, "ws://127.0.0.1:1/v1?key=pk_live%20a%26b");
        assert_eq!(connect_url("wss://h", true, "a.b-c~d/é"), "wss://h/v1?token=a.b-c~d%2F%C3%A9");
        assert_eq!(scrub(&u), "ws://127.0.0.1:1/v1?key=***");
        assert_eq!(scrub("failed GET ws://h/v1?token=eyJ.abc.def 401"), "failed GET ws://h/v1?token=*** 401");
        assert_eq!(scrub("x?key=a&token=b&c=1"), "x?key=***&token=***&c=1");
        assert_eq!(scrub("monkey=1"), "monkey=1");
        assert_eq!(scrub("GET /v1?TOKEN=abc"), "GET /v1?TOKEN=***");
        assert_eq!(scrub("x?key=\"quoted\" é?token=ü&k"), "x?key=***\"quoted\" é?token=***&k");
        assert_eq!(scrub(&scrub("a?key=b")), "a?key=***");
        assert_eq!(scrub("end?key="), "end?key=***");
        assert_eq!(scrub("é?"), "é?");
    }
}
