//! Lateness: the per-partition event-time watermark and the rule that makes an event late.
//!
//! For partition `p`, after valid events with event times `t1, t2, …` have arrived, the
//! watermark is `W_p = max(t1, t2, …) − L` (`L` = allowed lateness, 10 minutes by default);
//! before any valid event it is −∞. A valid event whose event time is **strictly** earlier
//! than the watermark at its arrival (computed from the events *before* it) is late: it goes
//! to the `late` table with that watermark and takes no further part (not even in dedup).
//! An event exactly at the watermark is on time. Rejected messages never move `W_p`; late
//! events cannot move it either (their time is below the maximum already seen).
//!
//! Because `W_p` depends only on partition `p`'s own message sequence, which events are late
//! is the same whatever the interleaving of partitions, workers or processes.

use connectors::schema::EventTime;

/// The watermark state of one partition.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PartitionWatermark {
    /// Largest event time of a valid event seen so far, if any.
    max_event_time: Option<EventTime>,
    /// Allowed lateness in microseconds.
    lateness_micros: i64,
}

/// What the lateness check decided for one valid event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Lateness {
    /// On time: the event continues to dedup.
    OnTime,
    /// Late: its event time is strictly before this watermark.
    Late(EventTime),
}

impl PartitionWatermark {
    /// A partition that has seen no valid event yet.
    pub fn new(lateness_micros: i64) -> Self {
        PartitionWatermark { max_event_time: None, lateness_micros }
    }

    /// Restores a partition's state from its largest event time seen so far.
    pub fn resume(lateness_micros: i64, max_event_time: Option<EventTime>) -> Self {
        PartitionWatermark { max_event_time, lateness_micros }
    }

    /// The current watermark, `None` meaning −∞.
    pub fn watermark(&self) -> Option<EventTime> {
        self.max_event_time.map(|t| t.minus_micros(self.lateness_micros))
    }

    /// The largest event time seen so far.
    pub fn max_event_time(&self) -> Option<EventTime> {
        self.max_event_time
    }

    /// Checks a valid event against the watermark, then advances the watermark with it.
    pub fn observe(&mut self, t: EventTime) -> Lateness {
        if let Some(w) = self.watermark() {
            if t < w {
                return Lateness::Late(w);
            }
        }
        if self.max_event_time.is_none_or(|m| t > m) {
            self.max_event_time = Some(t);
        }
        Lateness::OnTime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    #[test]
    fn strictly_earlier_than_the_watermark_is_late() {
        let mut w = PartitionWatermark::new(10 * MIN);
        assert_eq!(w.watermark(), None);
        assert_eq!(w.observe(EventTime(100 * MIN)), Lateness::OnTime);
        assert_eq!(w.watermark(), Some(EventTime(90 * MIN)));
        // Exactly at the watermark: on time, and it does not move the watermark.
        assert_eq!(w.observe(EventTime(90 * MIN)), Lateness::OnTime);
        assert_eq!(w.observe(EventTime(90 * MIN - 1)), Lateness::Late(EventTime(90 * MIN)));
        // Out of order but within lateness: on time.
        assert_eq!(w.observe(EventTime(95 * MIN)), Lateness::OnTime);
        assert_eq!(w.watermark(), Some(EventTime(90 * MIN)));
        assert_eq!(w.observe(EventTime(130 * MIN)), Lateness::OnTime);
        assert_eq!(w.observe(EventTime(100 * MIN)), Lateness::Late(EventTime(120 * MIN)));
    }
}
