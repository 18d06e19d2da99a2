//! `welcome.metadata.iceServers`: TURN/STUN entries, validated fail-closed (any
//! malformed entry drops the whole list) with a scheme allow-list and caps, so
//! a hostile token cannot smuggle odd URLs into an application.

use serde_json::{Map, Value};

use super::events::IceServer;

const MAX_ENTRIES: usize = 16;
const MAX_URL_LEN: usize = 512;
const MAX_FIELD_LEN: usize = 1024;

/// Validated `iceServers`, or `None` when absent or malformed.
pub(crate) fn ice_servers(metadata: Option<&Map<String, Value>>) -> Option<Vec<IceServer>> {
    let Value::Array(entries) = metadata?.get("iceServers")? else { return None };
    if entries.len() > MAX_ENTRIES {
        return None;
    }
    entries.iter().map(entry).collect()
}

fn entry(value: &Value) -> Option<IceServer> {
    let e = value.as_object()?;
    let urls = match e.get("urls")? {
        Value::String(u) => vec![allowed_url(u)?],
        Value::Array(us) if !us.is_empty() => {
            us.iter().map(|u| u.as_str().and_then(allowed_url)).collect::<Option<Vec<_>>>()?
        }
        _ => return None,
    };
    Some(IceServer { urls, username: text_field(e, "username")?, credential: text_field(e, "credential")? })
}

fn allowed_url(u: &str) -> Option<String> {
    let scheme_ok = ["stun:", "stuns:", "turn:", "turns:"]
        .iter()
        .any(|p| u.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p)));
    (scheme_ok && u.chars().count() <= MAX_URL_LEN).then(|| u.to_owned())
}

/// `Some(None)`: absent or not a string (ignored, as the SDK does);
/// `None`: too long (the whole list is refused).
fn text_field(e: &Map<String, Value>, key: &str) -> Option<Option<String>> {
    match e.get(key) {
        Some(Value::String(s)) if s.chars().count() > MAX_FIELD_LEN => None,
        Some(Value::String(s)) => Some(Some(s.clone())),
        _ => Some(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Option<Vec<IceServer>> {
        ice_servers(v.as_object())
    }

    #[test]
    fn valid_entries() {
        let got = parse(json!({"iceServers": [
            {"urls": "stun:a:3478"},
            {"urls": ["turn:b", "TURNS:c"], "username": "u", "credential": "p"},
            {"urls": "stuns:d", "username": 5}
        ]}))
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].urls, vec!["turn:b", "TURNS:c"]);
        assert_eq!(got[1].username.as_deref(), Some("u"));
        assert_eq!(got[2].username, None);
        assert_eq!(ice_servers(None), None);
        assert_eq!(parse(json!({})), None);
    }

    #[test]
    fn any_bad_entry_refuses_the_list() {
        for bad in [
            json!({"iceServers": [{"urls": "http://x"}]}),
            json!({"iceServers": [{"urls": ""}]}),
            json!({"iceServers": [{"urls": []}]}),
            json!({"iceServers": [{"urls": ["stun:a", 5]}]}),
            json!({"iceServers": [{"urls": format!("stun:{}", "a".repeat(600))}]}),
            json!({"iceServers": [{"urls": "stun:a"}, 3]}),
            json!({"iceServers": "x"}),
            json!({"iceServers": [{"urls": "stun:a", "username": "u".repeat(2000)}]}),
            json!({"iceServers": vec![json!({"urls": "stun:a"}); 17]}),
            json!({"iceServers": [{"urls": "sté"}]}),
        ] {
            assert_eq!(parse(bad.clone()), None, "{bad}");
        }
    }
}
