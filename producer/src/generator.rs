//! The deterministic event generator.
//!
//! Event `i` has event time `start + i / rate` seconds (millisecond precision). Its device is
//! drawn uniformly from `device-001..device-050`; each device has a fixed type (the five
//! types in turn), zone and firmware. Status is normal / warning / critical with
//! probabilities 0.80 / 0.15 / 0.05; `event_duration` is log-normal (median 150 ms, σ 0.6, so
//! most values lie in 50-500 ms), multiplied by 20-50 for the `outliers` fraction; `value`
//! is plausible for the type. Every message also has an *arrival time* (event time):
//! - an on-time event arrives at its own timestamp;
//! - a `late` event arrives 20-90 minutes after it;
//! - a duplicate (a byte copy, for the `duplicates` fraction) arrives 0-5 minutes after the
//!   original's arrival;
//! - an invalid line (`invalid` fraction, cycling through every [`InvalidKind`]) arrives
//!   with the event it was made from.
//!
//! Messages come out in arrival order (ties in generation order). The key is the device id
//! and the partition is Kafka's default partitioner of the key. The stream is produced
//! incrementally: only messages whose arrival is still ahead are held (a heap), so a week of
//! events never sits in memory. Same seed and configuration, same bytes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use connectors::parse::RejectReason;
use connectors::partition::partition_for_key;
use connectors::schema::{DeviceType, Status};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};

/// Number of simulated devices.
pub const DEVICES: u32 = 50;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GeneratorConfig {
    /// Random seed: same seed and configuration, same bytes.
    pub seed: u64,
    /// Events per second of event time.
    pub rate: f64,
    /// Number of events (wins over `duration`).
    pub count: Option<u64>,
    /// Event-time span to generate, when `count` is not given.
    pub duration: Option<std::time::Duration>,
    /// Event time of the first event.
    pub start: DateTime<Utc>,
    /// Number of partitions.
    pub partitions: u32,
    /// Fraction of events that get a byte-identical copy arriving up to 5 minutes later.
    pub duplicates: f64,
    /// Fraction of events that arrive 20-90 minutes after their timestamp.
    pub late: f64,
    /// Number of invalid lines per event (a fraction), cycling through every kind.
    pub invalid: f64,
    /// Fraction of events whose duration is multiplied by 20-50.
    pub outliers: f64,
    /// The engine's message size limit, used to make the oversize kind.
    pub max_message_bytes: usize,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 1,
            rate: 10.0,
            count: None,
            duration: Some(std::time::Duration::from_secs(3600)),
            start: DateTime::from_timestamp(1_762_128_000, 0).expect("valid"), // 2025-11-03T00:00:00Z
            partitions: 3,
            duplicates: 0.02,
            late: 0.0,
            invalid: 0.0,
            outliers: 0.0,
            max_message_bytes: connectors::parse::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

impl GeneratorConfig {
    /// Checks the configuration; the error names the flag to fix.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("--duplicates", self.duplicates),
            ("--late", self.late),
            ("--invalid", self.invalid),
            ("--outliers", self.outliers),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} {v} is not a fraction: give a number between 0 and 1"));
            }
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return Err(format!("--rate {} must be a positive number of events per second", self.rate));
        }
        if self.partitions == 0 {
            return Err("--partitions must be at least 1".into());
        }
        Ok(())
    }

    /// Number of events this configuration generates (unbounded without count and duration).
    pub fn total_events(&self) -> u64 {
        match (self.count, self.duration) {
            (Some(n), _) => n,
            (None, Some(d)) => (d.as_secs_f64() * self.rate).round() as u64,
            (None, None) => u64::MAX,
        }
    }
}

/// The kinds of invalid line the generator writes: one cause of each of the engine's
/// rejections ([`RejectReason`], the one list of them), and a second cause of two of them.
/// What each line looks like is [`Generator`]'s `invalid_line`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InvalidKind {
    /// The first cause of a reason: a missing field is removed, a bad one replaced by a value
    /// of the wrong kind or out of range, a line cut in half or padded past the size limit.
    Cause(RejectReason),
    /// `value` is null (the second cause of [`RejectReason::MissingValue`]).
    NullValue,
    /// `event_duration` as a string (the second cause of [`RejectReason::BadEventDuration`]).
    StringDuration,
}

impl InvalidKind {
    /// Every kind, in the order they cycle: the reasons' first causes, then the second ones.
    pub const ALL: [InvalidKind; RejectReason::ALL.len() + 2] = {
        let mut all = [InvalidKind::NullValue; RejectReason::ALL.len() + 2];
        let mut i = 0;
        while i < RejectReason::ALL.len() {
            all[i] = InvalidKind::Cause(RejectReason::ALL[i]);
            i += 1;
        }
        all[i] = InvalidKind::NullValue;
        all[i + 1] = InvalidKind::StringDuration;
        all
    };

    /// The rejection the engine gives a line of this kind.
    pub fn reason(self) -> RejectReason {
        match self {
            InvalidKind::Cause(reason) => reason,
            InvalidKind::NullValue => RejectReason::MissingValue,
            InvalidKind::StringDuration => RejectReason::BadEventDuration,
        }
    }
}

/// What a message is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// A valid event arriving at its own time.
    OnTime,
    /// A valid event arriving 20-90 minutes late.
    Late,
    /// A byte copy of an earlier message.
    Duplicate,
    /// An invalid line.
    Invalid(InvalidKind),
}

/// One generated message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Partition it goes to.
    pub partition: u32,
    /// Kafka key: the device id.
    pub key: String,
    /// The bytes (one line, without `\n`).
    pub payload: Vec<u8>,
    /// Arrival time, milliseconds since the epoch (event-time scale).
    pub arrival_ms: i64,
    /// Event time, milliseconds since the epoch.
    pub event_ms: i64,
    /// What it is.
    pub kind: MessageKind,
    /// Device type (for metrics; `None` for invalid lines).
    pub device_type: Option<DeviceType>,
    /// Status (for metrics; `None` for invalid lines).
    pub status: Option<Status>,
    /// Whether its duration was made an outlier.
    pub outlier: bool,
}

/// The message stream of a [`GeneratorConfig`], in arrival order.
pub struct Generator {
    config: GeneratorConfig,
    rng: ChaCha8Rng,
    next_event: u64,
    total: u64,
    start_ms: i64,
    pending: BinaryHeap<Reverse<(i64, u64, usize)>>,
    slots: Vec<Option<Message>>,
    free: Vec<usize>,
    seq: u64,
    invalid_credit: f64,
    invalid_next: usize,
    duration: LogNormal<f64>,
}

const TYPES: [DeviceType; 5] =
    [DeviceType::Temperature, DeviceType::Pressure, DeviceType::Humidity, DeviceType::Motion, DeviceType::Light];
const ZONES: [&str; 5] = ["zone-A", "zone-B", "zone-C", "zone-D", "zone-E"];

/// The fixed type of device `d` (1-based).
pub fn device_type(d: u32) -> DeviceType {
    TYPES[((d - 1) % 5) as usize]
}

impl Generator {
    /// A generator for `config` (which should be [`GeneratorConfig::validate`]d).
    pub fn new(config: GeneratorConfig) -> Self {
        let total = config.total_events();
        Generator {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            start_ms: config.start.timestamp_millis(),
            config,
            next_event: 0,
            total,
            pending: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            invalid_credit: 0.0,
            invalid_next: 0,
            duration: LogNormal::new(150f64.ln(), 0.6).expect("valid parameters"),
        }
    }

    fn push(&mut self, m: Message) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(m);
                i
            }
            None => {
                self.slots.push(Some(m));
                self.slots.len() - 1
            }
        };
        let arrival = self.slots[slot].as_ref().map_or(0, |m| m.arrival_ms);
        self.pending.push(Reverse((arrival, self.seq, slot)));
        self.seq += 1;
    }

    fn event_time_ms(&self, i: u64) -> i64 {
        self.start_ms + (i as f64 * 1000.0 / self.config.rate).floor() as i64
    }

    /// Generates event `i` and queues its messages.
    fn generate(&mut self, i: u64) {
        let t = self.event_time_ms(i);
        let rng = &mut self.rng;
        let d: u32 = rng.random_range(1..=DEVICES);
        let ty = device_type(d);
        let status = match rng.random::<f64>() {
            x if x < 0.80 => Status::Normal,
            x if x < 0.95 => Status::Warning,
            _ => Status::Critical,
        };
        let outlier = rng.random::<f64>() < self.config.outliers;
        let mut duration = self.duration.sample(rng);
        if outlier {
            duration *= rng.random_range(20.0..50.0);
        }
        let value = match ty {
            DeviceType::Temperature => Normal::new(22.0, 3.0).expect("valid").sample(rng),
            DeviceType::Pressure => Normal::new(1013.0, 8.0).expect("valid").sample(rng),
            DeviceType::Humidity => rng.random_range(30.0..70.0),
            DeviceType::Motion => f64::from(rng.random_range(0..2u8)),
            DeviceType::Light => rng.random_range(0.0..1000.0),
        };
        let id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        let late = rng.random::<f64>() < self.config.late;
        let duplicate = rng.random::<f64>() < self.config.duplicates;
        let device_id = format!("device-{d:03}");
        let timestamp =
            DateTime::from_timestamp_millis(t).expect("in range").format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let fields: Vec<(&'static str, String)> = vec![
            ("event_id", format!("\"{id}\"")),
            ("device_id", format!("\"{device_id}\"")),
            ("device_type", format!("\"{}\"", ty.as_str())),
            ("timestamp", format!("\"{timestamp}\"")),
            ("event_duration", format!("{duration:.2}")),
            ("value", format!("{value:.2}")),
            ("status", format!("\"{}\"", status.as_str())),
            (
                "metadata",
                format!(
                    "{{\"location\":\"{}\",\"firmware\":\"v1.{}.0\"}}",
                    ZONES[((d - 1) / 10) as usize],
                    (d - 1) % 3
                ),
            ),
        ];
        let payload = json(&fields).into_bytes();
        let partition = partition_for_key(device_id.as_bytes(), self.config.partitions);
        let arrival = if late { t + self.rng.random_range(20 * 60_000..=90 * 60_000) } else { t };
        let message = Message {
            partition,
            key: device_id.clone(),
            payload,
            arrival_ms: arrival,
            event_ms: t,
            kind: if late { MessageKind::Late } else { MessageKind::OnTime },
            device_type: Some(ty),
            status: Some(status),
            outlier,
        };
        if duplicate {
            let mut copy = message.clone();
            copy.kind = MessageKind::Duplicate;
            copy.arrival_ms = arrival + self.rng.random_range(0..=300_000);
            self.push(copy);
        }
        self.push(message);
        // Invalid lines: `invalid` of them per event on average, exactly, by accumulation.
        self.invalid_credit += self.config.invalid;
        while self.invalid_credit >= 1.0 {
            self.invalid_credit -= 1.0;
            let kind = InvalidKind::ALL[self.invalid_next % InvalidKind::ALL.len()];
            self.invalid_next += 1;
            let d: u32 = self.rng.random_range(1..=DEVICES);
            let key = format!("device-{d:03}");
            let payload = self.invalid_line(kind, &fields);
            self.push(Message {
                partition: partition_for_key(key.as_bytes(), self.config.partitions),
                key,
                payload,
                arrival_ms: t,
                event_ms: t,
                kind: MessageKind::Invalid(kind),
                device_type: None,
                status: None,
                outlier: false,
            });
        }
    }

    fn invalid_line(&self, kind: InvalidKind, fields: &[(&'static str, String)]) -> Vec<u8> {
        let without = |name: &str| json(&fields.iter().filter(|(k, _)| *k != name).cloned().collect::<Vec<_>>());
        let with = |name: &str, v: &str| {
            json(
                &fields
                    .iter()
                    .map(|(k, x)| (*k, if *k == name { v.to_owned() } else { x.clone() }))
                    .collect::<Vec<_>>(),
            )
        };
        use RejectReason as R;
        match kind {
            InvalidKind::Cause(R::NotUtf8) => {
                let s = json(fields);
                let mut b = s.into_bytes();
                let at = b.iter().position(|c| *c == b'-').unwrap_or(0) + 1;
                b.splice(at..at, [0xff, 0xfe]);
                b
            }
            InvalidKind::Cause(R::MalformedJson) => {
                let s = json(fields);
                s.as_bytes()[..s.len() / 2].to_vec()
            }
            InvalidKind::Cause(R::MissingEventId) => without("event_id").into_bytes(),
            InvalidKind::Cause(R::MissingDeviceId) => without("device_id").into_bytes(),
            InvalidKind::Cause(R::MissingDeviceType) => without("device_type").into_bytes(),
            InvalidKind::Cause(R::MissingTimestamp) => without("timestamp").into_bytes(),
            InvalidKind::Cause(R::MissingEventDuration) => without("event_duration").into_bytes(),
            InvalidKind::Cause(R::MissingValue) => without("value").into_bytes(),
            InvalidKind::Cause(R::MissingStatus) => without("status").into_bytes(),
            InvalidKind::Cause(R::BadTimestamp) => with("timestamp", "\"2025-13-45T25:61:00Z\"").into_bytes(),
            InvalidKind::Cause(R::BadEventDuration) => with("event_duration", "-12.5").into_bytes(),
            InvalidKind::StringDuration => with("event_duration", "\"fast\"").into_bytes(),
            InvalidKind::NullValue => with("value", "null").into_bytes(),
            InvalidKind::Cause(R::BadValue) => with("value", "\"high\"").into_bytes(),
            InvalidKind::Cause(R::UnknownDeviceType) => with("device_type", "\"barometer\"").into_bytes(),
            InvalidKind::Cause(R::UnknownStatus) => with("status", "\"exploded\"").into_bytes(),
            InvalidKind::Cause(R::Oversize) => {
                let pad = "x".repeat(self.config.max_message_bytes);
                with("metadata", &format!("{{\"location\":\"zone-A\",\"padding\":\"{pad}\"}}")).into_bytes()
            }
        }
    }
}

/// `{"k":v,...}` from raw JSON values, in order.
fn json(fields: &[(&str, String)]) -> String {
    let mut s = String::with_capacity(256);
    s.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        s.push_str(k);
        s.push_str("\":");
        s.push_str(v);
    }
    s.push('}');
    s
}

impl Iterator for Generator {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        loop {
            // Release what arrives before the next event's own time.
            let next_time = (self.next_event < self.total).then(|| self.event_time_ms(self.next_event));
            if let Some(Reverse((arrival, _, slot))) = self.pending.peek().copied() {
                if next_time.is_none_or(|t| arrival < t) {
                    self.pending.pop();
                    self.free.push(slot);
                    return self.slots[slot].take();
                }
            }
            if self.next_event >= self.total {
                return None;
            }
            let i = self.next_event;
            self.next_event += 1;
            self.generate(i);
        }
    }
}
