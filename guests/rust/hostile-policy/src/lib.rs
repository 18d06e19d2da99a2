//! A hostile metadata policy, for the runtime's tests: the inbound metadata's
//! `attack` field picks the misbehaviour. The host must fail closed every time.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "metered:realtime/policy",
    generate_all,
});

use exports::metered::realtime::metadata_policy::{Guest, Inbound};

struct Hostile;

fn attack(metadata: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(metadata).unwrap_or_default();
    match value["attack"].as_str().unwrap_or("") {
        "loop" => loop {
            std::hint::black_box(0u64);
        },
        "trap" => panic!("hostile policy panics"),
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "huge" => Ok(format!(r#"{{"x":"{}"}}"#, "y".repeat(1 << 20))),
        "not-json" => Ok("this is not json".into()),
        _ => Ok(metadata.to_owned()),
    }
}

impl Guest for Hostile {
    fn check_inbound(announced: Inbound) -> Result<String, String> {
        attack(&announced.metadata)
    }

    fn decide_outbound(_stream_id: String, proposed: String) -> Result<String, String> {
        attack(&proposed)
    }
}

export!(Hostile);
