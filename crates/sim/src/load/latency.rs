//! Latency percentiles from raw samples.
//!
//! A run keeps every sample in microseconds (8 octets each: 200,000
//! messages cost 1.6 MB) and sorts once at the end, so percentiles are
//! exact rather than bucketed; nearest-rank definition.

use std::time::Duration;

use serde::Serialize;

/// Samples of one latency, in microseconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Samples(Vec<u64>);

impl Samples {
    pub(crate) fn record(&mut self, latency: Duration) {
        self.0
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    pub(crate) fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub(crate) fn summary(mut self) -> LatencySummary {
        self.0.sort_unstable();
        let v = &self.0;
        let rank = |p: f64| -> u64 {
            if v.is_empty() {
                return 0;
            }
            // Nearest rank: the smallest sample with at least p of all at or below it.
            let at = (p * v.len() as f64).ceil() as usize;
            v[at.clamp(1, v.len()) - 1]
        };
        let sum: u128 = v.iter().map(|&s| u128::from(s)).sum();
        LatencySummary {
            count: v.len() as u64,
            min_us: v.first().copied().unwrap_or(0),
            mean_us: if v.is_empty() {
                0
            } else {
                u64::try_from(sum / v.len() as u128).unwrap_or(u64::MAX)
            },
            p50_us: rank(0.50),
            p90_us: rank(0.90),
            p99_us: rank(0.99),
            p999_us: rank(0.999),
            max_us: v.last().copied().unwrap_or(0),
        }
    }
}

/// Percentiles of one latency, in microseconds; all zero without samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_us: u64,
    /// Arithmetic mean.
    pub mean_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl LatencySummary {
    /// The summary of samples in microseconds, in any order: for a caller
    /// that times requests of its own (`tern bench --http`) and reports
    /// them as the load generator reports its own.
    pub fn of_micros(samples: Vec<u64>) -> LatencySummary {
        Samples(samples).summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_1_to_1000() {
        let mut s = Samples::default();
        for us in (1..=1000).rev() {
            s.record(Duration::from_micros(us));
        }
        let sum = s.summary();
        assert_eq!(
            (
                sum.count,
                sum.min_us,
                sum.p50_us,
                sum.p90_us,
                sum.p99_us,
                sum.p999_us,
                sum.max_us
            ),
            (1000, 1, 500, 900, 990, 999, 1000)
        );
        assert_eq!(sum.mean_us, 500);
        assert_eq!(Samples::default().summary(), LatencySummary::default());
    }
}
