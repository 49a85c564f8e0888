//! Property tests of the validator: arbitrary bytes and mutated valid events never panic,
//! and every input is either an event or exactly one rejection whose reason is consistent
//! with the input (valid UTF-8 is never `not_utf8`, small inputs are never `oversize`, and
//! an accepted event re-serialised is accepted again with the same fields).

use connectors::parse::{parse_event, RejectReason, DEFAULT_MAX_MESSAGE_BYTES};
use proptest::prelude::*;

const VALID: &str = r#"{"event_id":"0b0d8c1e-5f5e-4c39-9d5a-1f6a3c2b9e11","device_id":"device-001","device_type":"temperature","timestamp":"2025-11-08T18:23:45.123Z","event_duration":127.34,"value":22.5,"status":"normal","metadata":{"location":"zone-A","firmware":"v1.0.0"}}"#;

fn check(raw: &[u8]) {
    match parse_event(raw, DEFAULT_MAX_MESSAGE_BYTES) {
        Ok(e) => {
            assert!(raw.len() <= DEFAULT_MAX_MESSAGE_BYTES);
            assert!(e.event_duration >= 0.0 && e.event_duration.is_finite());
            assert!(e.value.is_finite());
            assert!(e.timestamp.micros() >= 0);
            // Round trip through the canonical shape: still the same event.
            let again = serde_json::json!({
                "event_id": e.event_id, "device_id": e.device_id,
                "device_type": e.device_type.as_str(), "timestamp": e.timestamp.to_string(),
                "event_duration": e.event_duration, "value": e.value, "status": e.status.as_str(),
            })
            .to_string();
            let e2 = parse_event(again.as_bytes(), usize::MAX).expect("re-serialised event parses");
            assert_eq!((&e2.event_id, &e2.device_id, e2.timestamp), (&e.event_id, &e.device_id, e.timestamp));
            assert_eq!(e2.event_duration.to_bits(), e.event_duration.to_bits());
        }
        Err(reason) => {
            assert!(RejectReason::ALL.contains(&reason));
            if std::str::from_utf8(raw).is_ok() {
                assert_ne!(reason, RejectReason::NotUtf8);
            }
            if raw.len() <= DEFAULT_MAX_MESSAGE_BYTES {
                assert_ne!(reason, RejectReason::Oversize);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&raw);
    }

    #[test]
    fn mutated_valid_events_never_panic(
        edits in proptest::collection::vec((0usize..VALID.len(), any::<u8>(), 0u8..3), 1..6)
    ) {
        let mut raw = VALID.as_bytes().to_vec();
        for (pos, byte, op) in edits {
            let pos = pos.min(raw.len().saturating_sub(1));
            match op {
                0 => raw[pos] = byte,
                1 => raw.insert(pos, byte),
                _ => { if !raw.is_empty() { raw.remove(pos); } }
            }
        }
        check(&raw);
    }

    #[test]
    fn field_values_of_any_json_shape(
        field in prop::sample::select(vec!["event_id", "device_id", "device_type", "timestamp",
                                           "event_duration", "value", "status", "metadata"]),
        replacement in prop_oneof![
            Just("null".to_owned()), Just("true".to_owned()), Just("[]".to_owned()),
            Just("{}".to_owned()), any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| x.to_string()),
            any::<i64>().prop_map(|x| x.to_string()), "\\PC{0,24}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ],
    ) {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(VALID).unwrap();
        v.insert(field.to_owned(), serde_json::from_str(&replacement).unwrap());
        check(serde_json::to_string(&v).unwrap().as_bytes());
    }
}
