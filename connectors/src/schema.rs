//! The event schema shared by the producer, the engine and the analytics.
//!
//! An IoT sensor event as it travels on the `iot-events` topic is one JSON object:
//!
//! ```json
//! {"event_id": "UUID v4", "device_id": "device-001", "device_type": "temperature",
//!  "timestamp": "2025-11-08T18:23:45.123Z", "event_duration": 127.34, "value": 22.5,
//!  "status": "normal", "metadata": {"location": "zone-A", "firmware": "v1.0.0"}}
//! ```
//!
//! [`Event`] is that object after validation (see [`crate::parse`]); it borrows its strings
//! from the message bytes where it can, and [`Event::into_owned`] detaches it from them.
//!
//! Time is explicit: [`EventTime`] is the event's own `timestamp` in microseconds since the
//! Unix epoch (UTC). Processing time never appears in these types.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::parse::RejectReason;

/// Microseconds in one second.
pub const MICROS_PER_SECOND: i64 = 1_000_000;
/// Microseconds in one minute.
pub const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
/// Microseconds in one hour.
pub const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
/// Microseconds in one UTC day.
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// An event-time instant: microseconds since 1970-01-01T00:00:00Z, taken from an event's
/// `timestamp` field (sub-microsecond digits are truncated).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventTime(pub i64);

impl EventTime {
    /// The instant as microseconds since the epoch.
    pub fn micros(self) -> i64 {
        self.0
    }
    /// The start of the minute this instant falls in, counted in minutes since the epoch.
    pub fn minute(self) -> u64 {
        self.0.div_euclid(MICROS_PER_MINUTE) as u64
    }
    /// The UTC day this instant falls in, counted in days since the epoch.
    pub fn day(self) -> i32 {
        self.0.div_euclid(MICROS_PER_DAY) as i32
    }
    /// This instant moved back by `micros` (saturating).
    pub fn minus_micros(self, micros: i64) -> EventTime {
        EventTime(self.0.saturating_sub(micros))
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp_micros(self.0) {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
            None => write!(f, "{}us", self.0),
        }
    }
}

macro_rules! closed_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The value as it is spelled in events and tables.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// Parses the spelling used in events; `None` for anything else.
            pub fn from_str_exact(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_enum! {
    /// The kind of sensor that produced an event.
    DeviceType {
        /// Temperature sensor (°C).
        Temperature => "temperature",
        /// Pressure sensor (hPa).
        Pressure => "pressure",
        /// Relative humidity sensor (%).
        Humidity => "humidity",
        /// Motion detector (0/1).
        Motion => "motion",
        /// Light sensor (lux).
        Light => "light",
    }
}

closed_enum! {
    /// The health status a device reports with each event.
    Status {
        /// Normal operation.
        Normal => "normal",
        /// Degraded operation.
        Warning => "warning",
        /// Failing device.
        Critical => "critical",
    }
}

/// An event's id as the engine holds it. A canonical UUID (36 characters: lowercase hex
/// digits, hyphens at 8-4-4-4-12), the form nearly every id takes, is held as its 128 bits:
/// no allocation, and equality and hashing on one integer. Any other id is held as its text,
/// which is never a canonical UUID (the constructors decide), so two ids are equal exactly
/// when their texts are, and [`fmt::Display`] gives the text back byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventId<'a> {
    /// A canonical UUID.
    Uuid(u128),
    /// Any other id.
    Text(Cow<'a, str>),
}

/// Bytes of a canonical UUID's text.
pub const UUID_LEN: usize = 36;

/// Each byte's value as a lowercase hex digit, or `0xff`.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

impl<'a> EventId<'a> {
    /// The id whose text is `text`.
    pub fn new(text: Cow<'a, str>) -> Self {
        match uuid_bits(text.as_bytes()) {
            Some(bits) => EventId::Uuid(bits),
            None => EventId::Text(text),
        }
    }

    /// The id detached from the bytes it may borrow.
    pub fn into_owned(self) -> EventId<'static> {
        match self {
            EventId::Uuid(bits) => EventId::Uuid(bits),
            EventId::Text(text) => EventId::Text(Cow::Owned(text.into_owned())),
        }
    }

    /// The id's text, spelled into `buf` if it is a UUID.
    pub fn as_str<'b>(&'b self, buf: &'b mut [u8; UUID_LEN]) -> &'b str {
        match self {
            EventId::Text(text) => text,
            EventId::Uuid(bits) => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut nibble = 32;
                for (i, out) in buf.iter_mut().enumerate() {
                    if matches!(i, 8 | 13 | 18 | 23) {
                        *out = b'-';
                    } else {
                        nibble -= 1;
                        *out = DIGITS[(bits >> (4 * nibble)) as usize & 15];
                    }
                }
                std::str::from_utf8(buf).expect("hex digits and hyphens are ASCII")
            }
        }
    }
}

/// The 128 bits of a canonical UUID's text, or `None` for any other text.
fn uuid_bits(b: &[u8]) -> Option<u128> {
    if b.len() != UUID_LEN || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let (mut bits, mut bad) = (0u128, 0u8);
    for (i, &c) in b.iter().enumerate() {
        if !matches!(i, 8 | 13 | 18 | 23) {
            let v = HEX_VALUE[c as usize];
            bad |= v;
            bits = bits << 4 | (v & 15) as u128;
        }
    }
    (bad < 16).then_some(bits)
}

impl fmt::Display for EventId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str(&mut [0; UUID_LEN]))
    }
}

impl PartialEq<str> for EventId<'_> {
    fn eq(&self, other: &str) -> bool {
        match self {
            EventId::Uuid(bits) => uuid_bits(other.as_bytes()) == Some(*bits),
            EventId::Text(text) => text == other,
        }
    }
}

impl PartialEq<&str> for EventId<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl<'a> From<&'a str> for EventId<'a> {
    fn from(text: &'a str) -> Self {
        EventId::new(Cow::Borrowed(text))
    }
}

impl From<String> for EventId<'static> {
    fn from(text: String) -> Self {
        EventId::new(Cow::Owned(text))
    }
}

impl Serialize for EventId<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str(&mut [0; UUID_LEN]))
    }
}

impl<'de> Deserialize<'de> for EventId<'_> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|text| EventId::new(Cow::Owned(text)))
    }
}

/// A validated event. Strings borrow from the message bytes when they contain no JSON
/// escapes; `'static` events own their strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event<'a> {
    /// Unique id of the reading (a UUID v4 by convention; not checked).
    pub event_id: EventId<'a>,
    /// Device that produced the reading, also the Kafka message key.
    pub device_id: Cow<'a, str>,
    /// Kind of sensor.
    pub device_type: DeviceType,
    /// Event time, from the `timestamp` field.
    pub timestamp: EventTime,
    /// How long the reading took, in milliseconds; never negative (`-0.0` becomes `0.0`).
    pub event_duration: f64,
    /// The measured value.
    pub value: f64,
    /// Device status.
    pub status: Status,
    /// `metadata.location`, when present as a string.
    pub location: Option<Cow<'a, str>>,
    /// `metadata.firmware`, when present as a string.
    pub firmware: Option<Cow<'a, str>>,
}

/// An event that owns its strings, as it travels through the dataflow.
pub type OwnedEvent = Event<'static>;

impl Event<'_> {
    /// Detaches the event from the message bytes it was parsed from. Low-cardinality strings
    /// (`device_id`, `location`, `firmware`) are interned, so they cost no allocation.
    pub fn into_owned(self) -> OwnedEvent {
        Event {
            event_id: self.event_id.into_owned(),
            device_id: intern(self.device_id),
            device_type: self.device_type,
            timestamp: self.timestamp,
            event_duration: self.event_duration,
            value: self.value,
            status: self.status,
            location: self.location.map(intern),
            firmware: self.firmware.map(intern),
        }
    }
}

/// How many distinct strings one thread interns before it falls back to allocating; bounds
/// the memory an adversarial stream of distinct ids can pin.
const INTERN_CAPACITY: usize = 4096;
/// Longest string that is interned.
const INTERN_MAX_LEN: usize = 64;

thread_local! {
    static INTERNED: std::cell::RefCell<rustc_hash::FxHashSet<&'static str>> = Default::default();
}

/// A `'static` copy of `s`, shared with every earlier equal string of this thread, or an
/// owned copy once the thread's interner is full.
pub fn intern(s: Cow<'_, str>) -> Cow<'static, str> {
    if s.len() > INTERN_MAX_LEN {
        return Cow::Owned(s.into_owned());
    }
    INTERNED.with(|set| {
        let mut set = set.borrow_mut();
        if let Some(found) = set.get(s.as_ref()) {
            return Cow::Borrowed(*found);
        }
        if set.len() >= INTERN_CAPACITY {
            return Cow::Owned(s.into_owned());
        }
        let leaked: &'static str = Box::leak(s.into_owned().into_boxed_str());
        set.insert(leaked);
        Cow::Borrowed(leaked)
    })
}

/// Where a message came from: its partition and its offset within the partition (the Kafka
/// offset, or the 0-based line number for the file source). Its order is arrival order.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Partition number.
    pub partition: u32,
    /// Offset of the message within its partition.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partition {} offset {}", self.partition, self.offset)
    }
}

// The rows the source produces from messages: what the `events`, `late` and `rejected`
// tables hold (their Parquet layout is `crate::sink::tables`').

/// An accepted, deduplicated event and where it was read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// Partition and offset of the first copy.
    pub position: Position,
    /// The event.
    pub event: OwnedEvent,
}

/// A valid event that arrived behind its partition's watermark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LateRow {
    /// Partition and offset of the message.
    pub position: Position,
    /// The event.
    pub event: OwnedEvent,
    /// The partition's watermark when it arrived (its event time was strictly earlier).
    pub watermark: EventTime,
}

/// A message that failed validation, kept byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RejectedRow {
    /// Partition and offset of the message.
    pub position: Position,
    /// Why it was rejected.
    pub reason: RejectReason,
    /// The message bytes.
    pub raw: Vec<u8>,
    /// The partition's watermark on arrival (clamped to the epoch); names the hive partition.
    pub filed_under: EventTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_and_days_floor_towards_negative_infinity() {
        assert_eq!(EventTime(0).minute(), 0);
        assert_eq!(EventTime(MICROS_PER_MINUTE - 1).minute(), 0);
        assert_eq!(EventTime(MICROS_PER_MINUTE).minute(), 1);
        assert_eq!(EventTime(MICROS_PER_DAY - 1).day(), 0);
        assert_eq!(EventTime(MICROS_PER_DAY).day(), 1);
    }

    #[test]
    fn closed_enums_round_trip() {
        for t in DeviceType::ALL {
            assert_eq!(DeviceType::from_str_exact(t.as_str()), Some(*t));
        }
        for s in Status::ALL {
            assert_eq!(Status::from_str_exact(s.as_str()), Some(*s));
        }
        assert_eq!(DeviceType::from_str_exact("Temperature"), None);
        assert_eq!(Status::from_str_exact(""), None);
    }

    #[test]
    fn interning_shares_equal_strings() {
        let a = intern(Cow::Borrowed("device-001"));
        let b = intern(Cow::Owned("device-001".to_owned()));
        match (a, b) {
            (Cow::Borrowed(x), Cow::Borrowed(y)) => assert!(std::ptr::eq(x, y)),
            other => panic!("not interned: {other:?}"),
        }
        let long = "x".repeat(INTERN_MAX_LEN + 1);
        assert!(matches!(intern(Cow::Borrowed(&long)), Cow::Owned(_)));
    }

    #[test]
    fn event_ids_are_equal_exactly_when_their_texts_are() {
        let id = "9b2c4e1a-7f3d-4c2b-8a1e-0d5f6e7a8b9c";
        assert!(matches!(EventId::from(id), EventId::Uuid(_)));
        assert_eq!(EventId::from(id), EventId::from(id.to_owned()));
        assert_eq!(EventId::from(id).to_string(), id);
        assert_eq!(EventId::from(id), id);
        assert_eq!(EventId::from("00000000-0000-0000-0000-000000000010"), EventId::Uuid(16));
        assert_eq!(EventId::Uuid(u128::MAX).to_string(), "ffffffff-ffff-ffff-ffff-ffffffffffff");
        // Upper case, braces, a misplaced hyphen, another length or a non-hex digit are text.
        for other in [
            "9B2C4E1A-7F3D-4C2B-8A1E-0D5F6E7A8B9C",
            "9b2c4e1a7-f3d-4c2b-8a1e-0d5f6e7a8b9c",
            "9b2c4e1a-7f3d-4c2b-8a1e-0d5f6e7a8b9",
            "9b2c4e1a-7f3d-4c2b-8a1e-0d5f6e7a8b9g",
            "{9b2c4e1a-7f3d-4c2b-8a1e-0d5f6e7a8b9}",
            "x",
            "",
        ] {
            let other_id = EventId::from(other);
            assert_eq!(other_id, EventId::Text(other.into()));
            assert_eq!(other_id.to_string(), other);
            assert_ne!(other_id, EventId::from(id));
            assert!(other_id != id);
        }
        assert_ne!(EventId::from(id), EventId::from("9b2c4e1a-7f3d-4c2b-8a1e-0d5f6e7a8b9d"));
        let json = serde_json::to_string(&EventId::from(id)).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<EventId<'static>>(&json).unwrap(), EventId::from(id));
    }

    #[test]
    fn event_time_displays_as_rfc3339() {
        assert_eq!(EventTime(1_700_000_000_123_456).to_string(), "2023-11-14T22:13:20.123456Z");
    }
}
