//! Exact statistics over sorted multisets of `f64`, shared by the window and daily operators.
//!
//! Values arrive from differential's `reduce` sorted ascending, each with a multiplicity.
//! Sums are compensated (Neumaier), so results agree with a straightforward f64
//! recomputation to about 1e-15 relative whatever the order; percentiles are nearest-rank.

/// A compensated (Neumaier) running sum.
#[derive(Copy, Clone, Debug, Default)]
pub struct Sum {
    sum: f64,
    compensation: f64,
}

impl Sum {
    /// Adds `x`.
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }
    /// Adds `x` repeated `n` times.
    pub fn add_n(&mut self, x: f64, n: i64) {
        if n == 1 {
            self.add(x)
        } else {
            self.add(x * n as f64)
        }
    }
    /// The sum.
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// The 1-based nearest rank of the 95th percentile among `n` values: ⌈0.95·n⌉ (exact
/// integer arithmetic), at least 1.
pub fn p95_rank(n: i64) -> i64 {
    ((95 * n + 99) / 100).max(1)
}

/// The value at 1-based `rank` of a sorted multiset given as `(value, multiplicity)` pairs.
pub fn value_at_rank(sorted: impl IntoIterator<Item = (f64, i64)>, rank: i64) -> f64 {
    let mut seen = 0;
    let mut last = f64::NAN;
    for (x, n) in sorted {
        seen += n;
        last = x;
        if seen >= rank {
            return x;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_nearest_rank_ceilings() {
        assert_eq!(p95_rank(1), 1);
        assert_eq!(p95_rank(19), 19); // 18.05 -> 19
        assert_eq!(p95_rank(20), 19); // 19.0 exactly
        assert_eq!(p95_rank(100), 95);
        assert_eq!(p95_rank(101), 96); // 95.95 -> 96
        assert_eq!(p95_rank(500), 475);
    }

    #[test]
    fn value_at_rank_walks_multiplicities() {
        let v = [(1.0, 2), (2.0, 1), (5.0, 3)];
        assert_eq!(value_at_rank(v, 1), 1.0);
        assert_eq!(value_at_rank(v, 2), 1.0);
        assert_eq!(value_at_rank(v, 3), 2.0);
        assert_eq!(value_at_rank(v, 6), 5.0);
    }

    #[test]
    fn compensated_sum_is_exact_where_naive_is_not() {
        let mut s = Sum::default();
        for x in [1e16, 1.0, -1e16, 1.0] {
            s.add(x);
        }
        assert_eq!(s.value(), 2.0);
    }
}
