//! Validation: raw message bytes in, an [`Event`] or exactly one [`RejectReason`] out.
//!
//! A message is checked in this order, and the first failed check is its reason:
//!
//! 1. its size is at most the configured maximum ([`RejectReason::Oversize`]);
//! 2. it is UTF-8 ([`RejectReason::NotUtf8`]);
//! 3. it is one JSON object ([`RejectReason::MalformedJson`]; duplicate keys count as malformed);
//! 4. field by field, in the order `event_id`, `device_id`, `device_type`, `timestamp`,
//!    `event_duration`, `value`, `status`: a field that is absent or `null` is
//!    `missing_<field>`; otherwise
//!    - `event_id`, `device_id` must be strings (anything else counts as missing),
//!    - `device_type` must be one of the five types ([`RejectReason::UnknownDeviceType`]),
//!    - `timestamp` must be an RFC 3339 string no earlier than 1970 ([`RejectReason::BadTimestamp`]),
//!    - `event_duration` must be a number ≥ 0 ([`RejectReason::BadEventDuration`]),
//!    - `value` must be a number ([`RejectReason::BadValue`]; a `null` value is
//!      [`RejectReason::MissingValue`]),
//!    - `status` must be `normal`, `warning` or `critical` ([`RejectReason::UnknownStatus`]).
//!
//! `metadata` is optional; its `location` and `firmware` are kept when they are strings.
//! Unknown fields are ignored. Parsing borrows strings from the input buffer: the hot path
//! allocates nothing per field unless a string holds a JSON escape.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::calendar::parse_timestamp;
use crate::schema::{DeviceType, Event, EventId, Status};

/// The default largest message accepted, in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Why a message was rejected. A closed set: every rejected message has exactly one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// Larger than the configured maximum message size.
    Oversize,
    /// The bytes are not UTF-8.
    NotUtf8,
    /// Not a single well-formed JSON object.
    MalformedJson,
    /// `event_id` absent, null or not a string.
    MissingEventId,
    /// `device_id` absent, null or not a string.
    MissingDeviceId,
    /// `device_type` absent or null.
    MissingDeviceType,
    /// `timestamp` absent or null.
    MissingTimestamp,
    /// `event_duration` absent or null.
    MissingEventDuration,
    /// `value` absent or null.
    MissingValue,
    /// `status` absent or null.
    MissingStatus,
    /// `device_type` is not one of the five known types.
    UnknownDeviceType,
    /// `timestamp` is not an RFC 3339 date-time from 1970 on.
    BadTimestamp,
    /// `event_duration` is negative or not a number.
    BadEventDuration,
    /// `value` is not a number.
    BadValue,
    /// `status` is not `normal`, `warning` or `critical`.
    UnknownStatus,
}

impl RejectReason {
    /// Every reason, in declaration order.
    pub const ALL: &'static [RejectReason] = &[
        RejectReason::Oversize,
        RejectReason::NotUtf8,
        RejectReason::MalformedJson,
        RejectReason::MissingEventId,
        RejectReason::MissingDeviceId,
        RejectReason::MissingDeviceType,
        RejectReason::MissingTimestamp,
        RejectReason::MissingEventDuration,
        RejectReason::MissingValue,
        RejectReason::MissingStatus,
        RejectReason::UnknownDeviceType,
        RejectReason::BadTimestamp,
        RejectReason::BadEventDuration,
        RejectReason::BadValue,
        RejectReason::UnknownStatus,
    ];

    /// The reason's code, as written to the `reason` column and the `reason` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversize => "oversize",
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::MissingEventId => "missing_event_id",
            RejectReason::MissingDeviceId => "missing_device_id",
            RejectReason::MissingDeviceType => "missing_device_type",
            RejectReason::MissingTimestamp => "missing_timestamp",
            RejectReason::MissingEventDuration => "missing_event_duration",
            RejectReason::MissingValue => "missing_value",
            RejectReason::MissingStatus => "missing_status",
            RejectReason::UnknownDeviceType => "unknown_device_type",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::BadEventDuration => "bad_event_duration",
            RejectReason::BadValue => "bad_value",
            RejectReason::UnknownStatus => "unknown_status",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses and validates one message. See the module header for the rules.
pub fn parse_event(raw: &[u8], max_message_bytes: usize) -> Result<Event<'_>, RejectReason> {
    if raw.len() > max_message_bytes {
        return Err(RejectReason::Oversize);
    }
    let text = std::str::from_utf8(raw).map_err(|_| RejectReason::NotUtf8)?;
    match canonical(text) {
        Some(fields) => fields.validate(),
        None => parse_json(text),
    }
}

/// Any JSON text through serde_json: the general path.
fn parse_json(text: &str) -> Result<Event<'_>, RejectReason> {
    // serde would also accept the fields as a JSON array; only an object is an event.
    if !text.trim_start().starts_with('{') {
        return Err(RejectReason::MalformedJson);
    }
    let fields: RawFields<'_> = serde_json::from_str(text).map_err(|_| RejectReason::MalformedJson)?;
    fields.validate()
}

/// The fields of a message in the canonical layout, the one producers write (the fields in
/// schema order, no whitespace, strings without escapes, numbers with a fraction and no
/// exponent, `metadata` with `location` then `firmware`), read without a JSON parser; `None`
/// for anything else, which then goes through [`parse_json`]. Both paths give the same fields
/// for any text this accepts (the JSON grammar is checked as far as the layout goes, and
/// numbers are converted by the standard library's correctly rounded parser, as serde_json
/// does with `float_roundtrip`); the tests compare them.
fn canonical(text: &str) -> Option<RawFields<'_>> {
    let mut c = Cursor { text, at: 0 };
    c.expect("{\"event_id\":")?;
    let event_id = c.string()?;
    c.expect(",\"device_id\":")?;
    let device_id = c.string()?;
    c.expect(",\"device_type\":")?;
    let device_type = c.string()?;
    c.expect(",\"timestamp\":")?;
    let timestamp = c.string()?;
    c.expect(",\"event_duration\":")?;
    let event_duration = c.number()?;
    c.expect(",\"value\":")?;
    let value = c.number()?;
    c.expect(",\"status\":")?;
    let status = c.string()?;
    c.expect(",\"metadata\":{\"location\":")?;
    let location = c.string()?;
    c.expect(",\"firmware\":")?;
    let firmware = c.string()?;
    c.expect("}}")?;
    (c.at == text.len()).then_some(RawFields {
        event_id: Scalar::Str(Cow::Borrowed(event_id)),
        device_id: Scalar::Str(Cow::Borrowed(device_id)),
        device_type: Scalar::Str(Cow::Borrowed(device_type)),
        timestamp: Scalar::Str(Cow::Borrowed(timestamp)),
        event_duration: Scalar::Num(event_duration),
        value: Scalar::Num(value),
        status: Scalar::Str(Cow::Borrowed(status)),
        metadata: Metadata { location: Some(Cow::Borrowed(location)), firmware: Some(Cow::Borrowed(firmware)) },
    })
}

/// A position in a message read by [`canonical`].
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    /// Steps over `literal`, if it comes next.
    fn expect(&mut self, literal: &str) -> Option<()> {
        self.text[self.at..].starts_with(literal).then(|| self.at += literal.len())
    }

    /// A JSON string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        (bytes.get(self.at) == Some(&b'"')).then_some(())?;
        let start = self.at + 1;
        let len = bytes[start..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        (bytes[start + len] == b'"').then_some(())?;
        self.at = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// A JSON number of the form `-?(0|[1-9][0-9]*)\.[0-9]+` (no exponent).
    fn number(&mut self) -> Option<f64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut i = start + usize::from(bytes.get(start) == Some(&b'-'));
        let digits = |i: usize| bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let int = digits(i);
        if int == 0 || (int > 1 && bytes[i] == b'0') {
            return None;
        }
        i += int;
        (bytes.get(i) == Some(&b'.')).then_some(())?;
        let frac = digits(i + 1);
        if frac == 0 || matches!(bytes.get(i + 1 + frac), Some(b'e' | b'E')) {
            return None;
        }
        self.at = i + 1 + frac;
        // A number beyond f64's range is an error for serde_json (`MalformedJson`), not
        // infinity: leave it to that path.
        self.text[start..self.at].parse().ok().filter(|x: &f64| x.is_finite())
    }
}

/// A JSON scalar as far as validation cares.
#[derive(Default)]
enum Scalar<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Num(f64),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// `metadata`: an object whose string `location` and `firmware` are kept; anything else
/// (null, another type, other keys) is accepted and ignored.
#[derive(Default)]
struct Metadata<'a> {
    location: Option<Cow<'a, str>>,
    firmware: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Metadata<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metadata<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a metadata object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = Metadata::default();
                while let Some(key) = a.next_key::<Cow<'de, str>>()? {
                    let value: Scalar<'de> = a.next_value()?;
                    let slot = match key.as_ref() {
                        "location" => &mut m.location,
                        "firmware" => &mut m.firmware,
                        _ => continue,
                    };
                    *slot = match value {
                        Scalar::Str(s) => Some(s),
                        _ => None,
                    };
                }
                Ok(m)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Metadata::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Metadata::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Metadata::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Metadata::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Metadata::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Metadata::default())
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Metadata::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// The top-level object, every field still unchecked.
#[derive(Deserialize)]
struct RawFields<'a> {
    #[serde(borrow, default)]
    event_id: Scalar<'a>,
    #[serde(borrow, default)]
    device_id: Scalar<'a>,
    #[serde(borrow, default)]
    device_type: Scalar<'a>,
    #[serde(borrow, default)]
    timestamp: Scalar<'a>,
    #[serde(borrow, default)]
    event_duration: Scalar<'a>,
    #[serde(borrow, default)]
    value: Scalar<'a>,
    #[serde(borrow, default)]
    status: Scalar<'a>,
    #[serde(borrow, default)]
    metadata: Metadata<'a>,
}

impl<'a> RawFields<'a> {
    fn validate(self) -> Result<Event<'a>, RejectReason> {
        use RejectReason::*;
        let event_id = match self.event_id {
            Scalar::Str(s) => EventId::new(s),
            _ => return Err(MissingEventId),
        };
        let device_id = match self.device_id {
            Scalar::Str(s) => s,
            _ => return Err(MissingDeviceId),
        };
        let device_type = match self.device_type {
            Scalar::Absent | Scalar::Null => return Err(MissingDeviceType),
            Scalar::Str(s) => DeviceType::from_str_exact(&s).ok_or(UnknownDeviceType)?,
            _ => return Err(UnknownDeviceType),
        };
        let timestamp = match self.timestamp {
            Scalar::Absent | Scalar::Null => return Err(MissingTimestamp),
            Scalar::Str(s) => parse_timestamp(&s).ok_or(BadTimestamp)?,
            _ => return Err(BadTimestamp),
        };
        let event_duration = match self.event_duration {
            Scalar::Absent | Scalar::Null => return Err(MissingEventDuration),
            // `+ 0.0` turns -0.0 into 0.0 so that durations order like their bit patterns.
            Scalar::Num(x) if x >= 0.0 && x.is_finite() => x + 0.0,
            _ => return Err(BadEventDuration),
        };
        let value = match self.value {
            Scalar::Absent | Scalar::Null => return Err(MissingValue),
            Scalar::Num(x) if x.is_finite() => x,
            _ => return Err(BadValue),
        };
        let status = match self.status {
            Scalar::Absent | Scalar::Null => return Err(MissingStatus),
            Scalar::Str(s) => Status::from_str_exact(&s).ok_or(UnknownStatus)?,
            _ => return Err(UnknownStatus),
        };
        Ok(Event {
            event_id,
            device_id,
            device_type,
            timestamp,
            event_duration,
            value,
            status,
            location: self.metadata.location,
            firmware: self.metadata.firmware,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    const VALID: &str = r#"{"event_id":"0b0d8c1e-5f5e-4c39-9d5a-1f6a3c2b9e11","device_id":"device-001","device_type":"temperature","timestamp":"2025-11-08T18:23:45.123Z","event_duration":127.34,"value":22.5,"status":"normal","metadata":{"location":"zone-A","firmware":"v1.0.0"}}"#;

    fn with(field: &str, replacement: Option<&str>) -> String {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(VALID).unwrap();
        match replacement {
            Some(r) => {
                v.insert(field.to_owned(), serde_json::from_str(r).unwrap());
            }
            None => {
                v.remove(field);
            }
        }
        serde_json::to_string(&v).unwrap()
    }

    fn reason(s: &str) -> RejectReason {
        parse_event(s.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap_err()
    }

    #[test]
    fn a_valid_event_parses_and_borrows() {
        let e = parse_event(VALID.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(e.event_id, "0b0d8c1e-5f5e-4c39-9d5a-1f6a3c2b9e11");
        assert!(matches!(e.event_id, EventId::Uuid(_)));
        assert_eq!(e.device_id, "device-001");
        assert_eq!(e.device_type, DeviceType::Temperature);
        assert_eq!(e.event_duration, 127.34);
        assert_eq!(e.value, 22.5);
        assert_eq!(e.status, Status::Normal);
        assert_eq!(e.location.as_deref(), Some("zone-A"));
        assert_eq!(e.firmware.as_deref(), Some("v1.0.0"));
        let expected = "2025-11-08T18:23:45.123Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(e.timestamp.micros(), expected.timestamp_micros());
    }

    #[test]
    fn every_reason_is_reachable() {
        use RejectReason::*;
        let cases: Vec<(Vec<u8>, RejectReason)> = vec![
            (vec![b'x'; DEFAULT_MAX_MESSAGE_BYTES + 1], Oversize),
            (b"{\"event_id\":\"\xff\xfe\"}".to_vec(), NotUtf8),
            (VALID.as_bytes()[..VALID.len() - 3].to_vec(), MalformedJson),
            (b"[1,2,3]".to_vec(), MalformedJson),
            (b"".to_vec(), MalformedJson),
            (format!("{VALID} {VALID}").into_bytes(), MalformedJson),
            (with("event_id", None).into_bytes(), MissingEventId),
            (with("event_id", Some("42")).into_bytes(), MissingEventId),
            (with("device_id", Some("null")).into_bytes(), MissingDeviceId),
            (with("device_type", None).into_bytes(), MissingDeviceType),
            (with("timestamp", None).into_bytes(), MissingTimestamp),
            (with("event_duration", None).into_bytes(), MissingEventDuration),
            (with("value", None).into_bytes(), MissingValue),
            (with("value", Some("null")).into_bytes(), MissingValue),
            (with("status", None).into_bytes(), MissingStatus),
            (with("device_type", Some("\"thermometer\"")).into_bytes(), UnknownDeviceType),
            (with("timestamp", Some("\"2025-13-08T18:23:45Z\"")).into_bytes(), BadTimestamp),
            (with("timestamp", Some("\"yesterday\"")).into_bytes(), BadTimestamp),
            (with("timestamp", Some("1700000000")).into_bytes(), BadTimestamp),
            (with("event_duration", Some("-0.5")).into_bytes(), BadEventDuration),
            (with("event_duration", Some("\"12.5\"")).into_bytes(), BadEventDuration),
            (with("value", Some("\"22.5\"")).into_bytes(), BadValue),
            (with("value", Some("[1]")).into_bytes(), BadValue),
            (with("status", Some("\"ok\"")).into_bytes(), UnknownStatus),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (raw, expected) in cases {
            let got = parse_event(&raw, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
            assert_eq!(got, expected, "for {:?}", String::from_utf8_lossy(&raw));
            seen.insert(got);
        }
        assert_eq!(seen.len(), RejectReason::ALL.len(), "a reason has no test case");
    }

    #[test]
    fn first_failed_check_wins() {
        // Both device_id and status are missing: the earlier field is the reason.
        let s = with("device_id", None);
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&s).unwrap();
        v.remove("status");
        assert_eq!(reason(&serde_json::to_string(&v).unwrap()), RejectReason::MissingDeviceId);
    }

    #[test]
    fn unicode_ids_escapes_and_extra_fields() {
        let s = with("device_id", Some("\"capteur-\u{00e9}t\u{00e9}-\u{1f321}\""));
        let e = parse_event(s.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(e.device_id, "capteur-\u{00e9}t\u{00e9}-\u{1f321}");
        let escaped = VALID.replace("device-001", "device-\\u0030\\n01");
        let e = parse_event(escaped.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(e.device_id, "device-0\n01");
        let extra = VALID.replacen('{', "{\"unknown\":{\"deep\":[1,2,{}]},", 1);
        assert!(parse_event(extra.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).is_ok());
        let no_meta = with("metadata", None);
        let e = parse_event(no_meta.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap();
        assert_eq!((e.location, e.firmware), (None, None));
        let odd_meta = with("metadata", Some("[1,2]"));
        assert!(parse_event(odd_meta.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).is_ok());
        let int_values = with("value", Some("3")).replace("127.34", "0");
        let e = parse_event(int_values.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap();
        assert_eq!((e.value, e.event_duration), (3.0, 0.0));
        let neg_zero = with("event_duration", Some("-0.0"));
        let e = parse_event(neg_zero.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(e.event_duration.to_bits(), 0.0f64.to_bits());
    }

    /// The canonical reader and serde_json give the same result for canonical lines (random
    /// ids, unicode strings, numbers of every length and sign, reasons of every kind), and
    /// the canonical reader declines whatever is not canonical.
    #[test]
    fn canonical_reader_agrees_with_serde_json() {
        let mut seed = 5u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        // Per field: the values drawn, mostly valid ones, so that most lines reach the numbers.
        let ids = ["0b0d8c1e-5f5e-4c39-9d5a-1f6a3c2b9e11", "0B0D8C1E-5F5E-4C39-9D5A-1F6A3C2B9E11", "id-\u{00e9}", ""];
        let devices = ["device-001", "capteur-\u{00e9}t\u{00e9}-\u{1f321}", ""];
        let types = ["temperature", "temperature", "light", "motion", "thermometer"];
        let times = [
            "2025-11-08T18:23:45.123Z",
            "2025-11-08T18:23:45Z",
            "2025-11-08T18:23:45+02:00",
            "1969-12-31T23:59:59Z",
            "2025-13-08T00:00:00Z",
        ];
        let statuses = ["normal", "critical", "warning", "ok"];
        let metas = ["zone-A", "v1.0.0", "", "\u{1f321}"];
        let (mut hits, mut total, mut valid) = (0, 0, 0);
        for _ in 0..20_000 {
            let mut number = || {
                let int = match next(4) {
                    0 => "0".to_owned(),
                    1 => next(10).to_string(),
                    _ => next(1 << 40).to_string(),
                };
                let frac: String = (0..1 + next(20)).map(|_| char::from(b'0' + next(10) as u8)).collect();
                let sign = if next(5) == 0 { "-" } else { "" };
                match next(12) {
                    0 => format!("{sign}{int}"),
                    1 => format!("{sign}{int}.{frac}e{}", next(30)),
                    2 => format!("{sign}0{int}.{frac}"),
                    _ => format!("{sign}{int}.{frac}"),
                }
            };
            let (duration, value) = (number(), number());
            let mut pick =
                |pool: &[&'static str]| pool[if next(10) < 8 { 0 } else { next(pool.len() as u64) as usize }];
            let line = format!(
                r#"{{"event_id":"{}","device_id":"{}","device_type":"{}","timestamp":"{}","event_duration":{duration},"value":{value},"status":"{}","metadata":{{"location":"{}","firmware":"{}"}}}}"#,
                pick(&ids),
                pick(&devices),
                pick(&types),
                pick(&times),
                pick(&statuses),
                pick(&metas),
                pick(&metas)
            );
            let serde = parse_json(&line);
            if let Some(fields) = canonical(&line) {
                hits += 1;
                assert_eq!(fields.validate(), serde, "for {line}");
            }
            total += 1;
            valid += usize::from(serde.is_ok());
            assert_eq!(parse_event(line.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES), serde, "for {line}");
        }
        assert!(hits > total / 2, "the canonical reader took only {hits} of {total} lines");
        assert!(valid > total / 4, "only {valid} of {total} lines were valid events");
        // Not canonical: declined (and then parsed by serde_json).
        for other in [
            VALID.replacen(',', ", ", 1),
            VALID.replace("device-001", "device-\\u00301"),
            VALID.replace("127.34", "127"),
            VALID.replace("127.34", "1.2e3"),
            VALID.replace("127.34", "01.5"),
            VALID.replace("127.34", "1."),
            VALID.replace("127.34", &format!("1{}.0", "0".repeat(309))),
            format!("{VALID} "),
            VALID.replace(r#""status":"normal","#, ""),
            VALID.replace(r#","firmware":"v1.0.0""#, ""),
        ] {
            assert!(canonical(&other).is_none(), "{other}");
            assert_eq!(parse_event(other.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES), parse_json(&other), "{other}");
        }
    }

    #[test]
    fn duplicate_keys_are_malformed() {
        let s = VALID.replacen('{', "{\"value\":1,", 1);
        assert_eq!(reason(&s), RejectReason::MalformedJson);
    }

    #[test]
    fn size_limit_is_inclusive() {
        assert!(parse_event(VALID.as_bytes(), VALID.len()).is_ok());
        assert_eq!(parse_event(VALID.as_bytes(), VALID.len() - 1).unwrap_err(), RejectReason::Oversize);
    }
}
