//! Validation and lateness of one partition's messages, in arrival order.
//!
//! Each message is first validated ([`connectors::parse::parse_event`]): a failure becomes
//! a `rejected` row with its partition, offset, reason and raw bytes, filed under the
//! partition's current watermark. A valid event is then checked against the partition's
//! watermark ([`super::lateness`]): a late one becomes a `late` row; an on-time one is
//! accepted and goes on to dedup at its event-time minute. This is the order the design
//! fixes: validate, then lateness, then dedup.

use connectors::parse::RejectReason;
use connectors::schema::{EventRow, LateRow, RejectedRow};
use connectors::schema::{EventTime, OwnedEvent, Position};

use super::lateness::{Lateness, PartitionWatermark};

/// One message after validation and the lateness check.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Classified {
    /// A valid, on-time event.
    Accepted(EventRow),
    /// A valid event behind its partition's watermark.
    Late(LateRow),
    /// A message that failed validation.
    Rejected(RejectedRow),
}

impl Classified {
    /// The event-time minute this record is stamped with in the dataflow: the event's own
    /// minute when accepted, else the minute of the partition watermark it was filed under.
    pub fn minute(&self) -> u64 {
        match self {
            Classified::Accepted(r) => r.event.timestamp.minute(),
            Classified::Late(r) => EventTime(r.watermark.micros().max(0)).minute(),
            Classified::Rejected(r) => r.filed_under.minute(),
        }
    }
}

/// Classifies one message of a partition, given the outcome of parsing it
/// ([`connectors::parse::parse_event`], done on the partition's reading thread), and
/// advances the partition's watermark.
pub fn classify(
    position: Position, raw: &[u8], parsed: Result<OwnedEvent, RejectReason>, watermark: &mut PartitionWatermark,
) -> Classified {
    match parsed {
        Err(reason) => Classified::Rejected(RejectedRow {
            position,
            reason,
            raw: raw.to_vec(),
            filed_under: EventTime(watermark.watermark().map_or(0, |w| w.micros().max(0))),
        }),
        Ok(event) => match watermark.observe(event.timestamp) {
            Lateness::OnTime => Classified::Accepted(EventRow { position, event }),
            Lateness::Late(w) => Classified::Late(LateRow { position, event, watermark: w }),
        },
    }
}
