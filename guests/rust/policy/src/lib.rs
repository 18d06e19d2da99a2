//! A metadata policy: delivers only `role` and `label` from untrusted peers
//! (strings, `label` cut to 64 characters), rejects anything else that claims
//! to be an instruction, and strips fields starting with `_` from what this
//! side announces.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "metered:realtime/policy",
    generate_all,
});

use exports::metered::realtime::metadata_policy::{Guest, Inbound};
use serde_json::{Map, Value};

struct Policy;

impl Guest for Policy {
    fn check_inbound(announced: Inbound) -> Result<String, String> {
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&announced.metadata) else {
            return Err("metadata is not a JSON object".into());
        };
        if fields.keys().any(|k| k.eq_ignore_ascii_case("instructions") || k.eq_ignore_ascii_case("prompt")) {
            return Err("metadata may not carry instructions".into());
        }
        let mut clean = Map::new();
        for key in ["role", "label"] {
            match fields.get(key) {
                Some(Value::String(s)) => {
                    clean.insert(key.into(), Value::String(s.chars().take(64).collect()));
                }
                Some(_) => return Err(format!("{key} must be a string")),
                None => {}
            }
        }
        Ok(Value::Object(clean).to_string())
    }

    fn decide_outbound(_stream_id: String, proposed: String) -> Result<String, String> {
        let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(&proposed) else {
            return Err("metadata is not a JSON object".into());
        };
        fields.retain(|k, _| !k.starts_with('_'));
        Ok(Value::Object(fields).to_string())
    }
}

export!(Policy);
