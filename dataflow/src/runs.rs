//! Sorted runs: what the aggregates receive instead of one differential update per event.
//!
//! A [`Run`] is a multiset of values held sorted ascending, each distinct value once with
//! its multiplicity. Dedup hands the aggregates one run per (event-time minute, device
//! type) per worker ([`MinuteRun`]); the window and daily operators feed runs, not events,
//! to differential's `reduce`, which sees every run of a key and [`merge`]s them back into
//! the one sorted multiset the statistics are defined on (the daily operator gathers a day's
//! runs on one worker first, so its reduce usually sees one run and reads it in place). The merged multiset, and so every
//! statistic computed from it, does not depend on how the events were split into runs, which
//! is what keeps the results bit-identical for any worker or process count.

use std::sync::Arc;

use connectors::schema::DeviceType;

/// A sorted multiset: distinct values ascending, each with its multiplicity (≥ 1).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Run<T>(pub Vec<(T, u64)>);

impl<T: Ord + Copy> Run<T> {
    /// The run of `values`, in any order (sorted here).
    pub fn from_values(mut values: Vec<T>) -> Self {
        values.sort_unstable();
        let mut out: Vec<(T, u64)> = Vec::with_capacity(values.len());
        for v in values {
            match out.last_mut() {
                Some((last, n)) if *last == v => *n += 1,
                _ => out.push((v, 1)),
            }
        }
        Run(out)
    }

    /// Number of values, with multiplicity.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|&(_, n)| n).sum()
    }

    /// Whether the run holds no value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The run of `f(value)` for every value; `f` must be monotone (non-decreasing), so the
    /// result stays sorted: equal images are combined.
    pub fn project<U: Ord + Copy>(&self, f: impl Fn(T) -> U) -> Run<U> {
        let mut out: Vec<(U, u64)> = Vec::with_capacity(self.0.len());
        for &(v, n) in &self.0 {
            let u = f(v);
            match out.last_mut() {
                Some((last, m)) if *last == u => *m += n,
                Some((last, _)) => {
                    debug_assert!(*last < u, "project needs a monotone function");
                    out.push((u, n))
                }
                None => out.push((u, n)),
            }
        }
        Run(out)
    }
}

/// A run held in several places at once without copies: cloning it counts a reference. The
/// daily p95 keeps each (day, type)'s day so far as one and hands the same run to the reduce's
/// arrangement (a day of durations held once, not twice). Exchanged between processes as
/// the run itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedRun<T>(pub Arc<Run<T>>);

impl<T: serde::Serialize> serde::Serialize for SharedRun<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for SharedRun<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Run::deserialize(deserializer).map(|run| SharedRun(Arc::new(run)))
    }
}

/// The union of runs, each counted `weight` times (differential's multiplicity of the run),
/// as one sorted sequence of distinct values with their total multiplicity; values whose
/// total is not positive are left out. Runs are merged two at a time, always the two
/// shortest, so a long run meets the short ones once, after they are merged among
/// themselves: `O(n log k)` for `k` runs of `n` values in all (beyond [`SORT_PARTS`] runs,
/// all but the longest are sorted together instead). The runs are read in place
/// (not copied first), so a long run is read once, by the merge that meets it.
pub fn merge<'a, T: Ord + Copy + 'a>(runs: impl IntoIterator<Item = (&'a Run<T>, i64)>) -> Vec<(T, i64)> {
    let mut parts: Vec<Part<'a, T>> = runs.into_iter().map(|(r, w)| Part::Run(&r.0, w)).collect();
    // Longest first, so the two shortest are at the end.
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    if parts.len() > SORT_PARTS {
        // Many runs (an hour's minute runs): all but the longest are sorted together, which
        // is cheaper than merging them two at a time (log k passes over their values, with
        // an unpredictable branch per value and a vector per merge).
        let mut values: Vec<(T, i64)> = Vec::with_capacity(parts[1..].iter().map(Part::len).sum());
        for part in parts.drain(1..) {
            part.extend_into(&mut values, 0..part.len());
        }
        values.sort_unstable_by_key(|a| a.0);
        values.dedup_by(|later, kept| {
            let equal = later.0 == kept.0;
            if equal {
                kept.1 += later.1;
            }
            equal
        });
        let sorted = Part::Merged(values);
        let at = parts.partition_point(|p| p.len() >= sorted.len());
        parts.insert(at, sorted);
    }
    while parts.len() > 1 {
        let (b, a) = (parts.pop().expect("two parts"), parts.pop().expect("two parts"));
        let merged = Part::Merged(merge_two(&a, &b));
        let at = parts.partition_point(|p| p.len() >= merged.len());
        parts.insert(at, merged);
    }
    let mut out = match parts.pop() {
        None => Vec::new(),
        Some(Part::Merged(v)) => v,
        Some(run) => (0..run.len()).map(|i| run.get(i)).collect(),
    };
    out.retain(|&(_, n)| n > 0);
    out
}

/// A run to merge, with its weight, or the result of merging some.
enum Part<'a, T> {
    Run(&'a [(T, u64)], i64),
    Merged(Vec<(T, i64)>),
}

impl<T: Ord + Copy> Part<'_, T> {
    fn len(&self) -> usize {
        match self {
            Part::Run(r, _) => r.len(),
            Part::Merged(v) => v.len(),
        }
    }
    #[inline]
    fn get(&self, i: usize) -> (T, i64) {
        match self {
            Part::Run(r, w) => (r[i].0, r[i].1 as i64 * w),
            Part::Merged(v) => v[i],
        }
    }
    #[inline]
    fn value(&self, i: usize) -> T {
        match self {
            Part::Run(r, _) => r[i].0,
            Part::Merged(v) => v[i].0,
        }
    }
    /// Appends the values at `range`, weighted.
    fn extend_into(&self, out: &mut Vec<(T, i64)>, range: std::ops::Range<usize>) {
        match self {
            Part::Run(r, w) => out.extend(r[range].iter().map(|&(v, n)| (v, n as i64 * w))),
            Part::Merged(v) => out.extend_from_slice(&v[range]),
        }
    }
    /// The first position at or after `from` whose value is not less than `x` (or the
    /// length): steps of 1, 2, 4, … from `from`, then a binary search within the last step.
    fn seek(&self, from: usize, x: &T) -> usize {
        let below = |i: usize| self.value(i) < *x;
        let (mut lo, mut step) = (from, 1);
        while lo + step <= self.len() && below(lo + step - 1) {
            lo += step;
            step *= 2;
        }
        // Everything before `lo` is below `x`; the answer is in `lo..=hi`.
        let hi = (lo + step).min(self.len());
        lo + match self {
            Part::Run(r, _) => r[lo..hi].partition_point(|(v, _)| v < x),
            Part::Merged(v) => v[lo..hi].partition_point(|(v, _)| v < x),
        }
    }
}

/// Beyond this many runs, [`merge`] sorts all but the longest together instead of merging
/// them two at a time.
const SORT_PARTS: usize = 8;

/// How much longer than the other a part must be for [`merge_two`] to copy it in segments.
const GALLOP_RATIO: usize = 8;

/// Two sorted sequences of distinct values as one, multiplicities of equal values added.
/// Parts of similar lengths are merged value by value. A part many times longer than the
/// other (a day so far meeting an hour) is copied in segments instead: the position of each
/// of the shorter part's values in it is found by a search that gallops from the last one,
/// and the values between are copied without comparisons.
fn merge_two<T: Ord + Copy>(a: &Part<'_, T>, b: &Part<'_, T>) -> Vec<(T, i64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    if long.len() >= GALLOP_RATIO * short.len() {
        let mut i = 0;
        for j in 0..short.len() {
            let y = short.get(j);
            let k = long.seek(i, &y.0);
            long.extend_into(&mut out, i..k);
            i = k;
            if i < long.len() && long.value(i) == y.0 {
                out.push((y.0, long.get(i).1 + y.1));
                i += 1;
            } else {
                out.push(y);
            }
        }
        long.extend_into(&mut out, i..long.len());
        return out;
    }
    let (n, m) = (a.len(), b.len());
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        let (x, y) = (a.get(i), b.get(j));
        match x.0.cmp(&y.0) {
            std::cmp::Ordering::Less => {
                out.push(x);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(y);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((x.0, x.1 + y.1));
                i += 1;
                j += 1;
            }
        }
    }
    a.extend_into(&mut out, i..n);
    b.extend_into(&mut out, j..m);
    out
}

/// The measurements of one event-time minute and device type that one worker kept after
/// dedup: `(event_duration bits, value bits)` pairs. Non-negative `f64`s order like their bit
/// patterns, so the run is sorted by duration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct MinuteRun {
    /// The event-time minute (minutes since the epoch).
    pub minute: u64,
    /// Device type.
    pub device_type: DeviceType,
    /// The measurements.
    pub values: Run<(u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive answer: every value repeated by its multiplicity and weight, sorted, counted.
    fn naive(runs: &[(Vec<u64>, i64)]) -> Vec<(u64, i64)> {
        let mut all: std::collections::BTreeMap<u64, i64> = Default::default();
        for (values, w) in runs {
            for v in values {
                *all.entry(*v).or_default() += w;
            }
        }
        all.into_iter().filter(|&(_, n)| n > 0).collect()
    }

    #[test]
    fn merge_equals_a_naive_count_for_any_split() {
        let mut rng = crate::operators::harness::Lcg(7);
        for k in [0, 1, 2, 3, 4, 5, 9, 40] {
            let runs: Vec<(Vec<u64>, i64)> =
                (0..k).map(|i| ((0..(i * 7 + 3)).map(|_| rng.below(50)).collect(), [1, 1, 2, -1][i % 4])).collect();
            let built: Vec<(Run<u64>, i64)> = runs.iter().map(|(v, w)| (Run::from_values(v.clone()), *w)).collect();
            assert_eq!(merge(built.iter().map(|(r, w)| (r, *w))), naive(&runs), "k = {k}");
        }
    }

    /// A long run meets short ones (the segment-copying merge), values shared or not, at
    /// either end or beyond, weights negative too.
    #[test]
    fn a_long_run_meeting_short_ones_equals_a_naive_count() {
        let mut rng = crate::operators::harness::Lcg(11);
        for round in 0..200 {
            let long: Vec<u64> = (0..rng.below(3_000) + 1).map(|_| 100 + rng.below(10_000)).collect();
            let mut runs = vec![(long, [1, 2][round % 2])];
            for i in 0..rng.below(4) + 1 {
                let len = rng.below(40) as usize;
                runs.push(((0..len).map(|_| rng.below(10_300)).collect(), [1, -1, 3][i as usize % 3]));
            }
            let built: Vec<(Run<u64>, i64)> = runs.iter().map(|(v, w)| (Run::from_values(v.clone()), *w)).collect();
            assert_eq!(merge(built.iter().map(|(r, w)| (r, *w))), naive(&runs), "round {round}");
        }
    }

    #[test]
    fn retracted_runs_cancel() {
        let a = Run::from_values(vec![3u64, 1, 3]);
        let b = Run::from_values(vec![3u64, 2]);
        assert_eq!(merge([(&a, 1), (&b, 1), (&a, -1)]), vec![(2, 1), (3, 1)]);
    }

    #[test]
    fn projection_combines_equal_images() {
        let r = Run::from_values(vec![(1u64, 9u64), (1, 2), (2, 0), (1, 2)]);
        assert_eq!(r.0, vec![((1, 2), 2), ((1, 9), 1), ((2, 0), 1)]);
        assert_eq!(r.project(|(d, _)| d).0, vec![(1, 3), (2, 1)]);
        assert_eq!(r.len(), 4);
    }
}
