//! Which upstream of a route goes first, and which next.
//!
//! A strategy orders the route's *available* upstreams (bound, circuit
//! closed, not throttled, window not full past its wait limit); the first is
//! tried, the rest are the failover order. Unavailable upstreams are skipped:
//! when none is left the message waits in the retry queue.

use std::sync::Mutex;

use crate::table::RouteUpstream;

/// How a route picks among its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// By priority, lowest first.
    Failover,
    /// Round robin in proportion to weights (smooth: no bursts to one upstream).
    Weighted,
    /// Cheapest price for the destination first; unknown prices last.
    LeastCost,
    /// Fewest requests in flight relative to capacity first.
    LeastLoaded,
}

/// What the router knows of one upstream of the route, now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Whether it can take a message now.
    pub available: bool,
    /// In flight over capacity (window, rate), 0.0 idle to 1.0 full.
    pub load: f64,
    /// Its price for this destination, if listed.
    pub price: Option<f64>,
}

/// Smooth weighted round robin state of one route.
#[derive(Debug, Default)]
pub struct WeightedState {
    current: Mutex<Vec<i64>>,
}

impl WeightedState {
    /// Picks among the available upstreams in proportion to their weights:
    /// each gains its weight, the highest is picked and pays back the total.
    fn pick(&self, upstreams: &[RouteUpstream], available: &[usize]) -> Option<usize> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.resize(upstreams.len(), 0);
        let total: i64 = available
            .iter()
            .map(|&i| i64::from(upstreams[i].weight))
            .sum();
        if total == 0 {
            return available.first().copied();
        }
        let mut best: Option<usize> = None;
        for &i in available {
            current[i] += i64::from(upstreams[i].weight);
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            current[b] -= total;
        }
        best
    }
}

impl Strategy {
    /// Indices into `upstreams` of the available ones, in attempt order.
    /// `candidates[i]` describes `upstreams[i]`.
    pub fn order(
        self,
        upstreams: &[RouteUpstream],
        candidates: &[Candidate],
        weighted: &WeightedState,
    ) -> Vec<usize> {
        let mut available: Vec<usize> = (0..upstreams.len().min(candidates.len()))
            .filter(|&i| candidates[i].available)
            .collect();
        // Priority order is the tie-break of every strategy.
        available.sort_by_key(|&i| (upstreams[i].priority, i));
        match self {
            Strategy::Failover => {}
            Strategy::Weighted => {
                if let Some(first) = weighted.pick(upstreams, &available) {
                    available.retain(|&i| i != first);
                    available.sort_by_key(|&i| std::cmp::Reverse(upstreams[i].weight));
                    available.insert(0, first);
                }
            }
            Strategy::LeastCost => available.sort_by(|&a, &b| {
                let (pa, pb) = (candidates[a].price, candidates[b].price);
                match (pa, pb) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
            }),
            Strategy::LeastLoaded => {
                available.sort_by(|&a, &b| candidates[a].load.total_cmp(&candidates[b].load));
            }
        }
        available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ups(weights: &[(u32, u32)]) -> Vec<RouteUpstream> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &(priority, weight))| RouteUpstream {
                name: format!("u{i}"),
                priority,
                weight,
            })
            .collect()
    }

    fn live(n: usize) -> Vec<Candidate> {
        vec![
            Candidate {
                available: true,
                load: 0.0,
                price: None
            };
            n
        ]
    }

    #[test]
    fn failover_goes_by_priority_and_skips_the_unavailable() {
        let upstreams = ups(&[(2, 1), (1, 1), (3, 1)]);
        let mut c = live(3);
        let state = WeightedState::default();
        assert_eq!(
            Strategy::Failover.order(&upstreams, &c, &state),
            vec![1, 0, 2]
        );
        c[1].available = false;
        assert_eq!(Strategy::Failover.order(&upstreams, &c, &state), vec![0, 2]);
        c[0].available = false;
        c[2].available = false;
        assert!(Strategy::Failover.order(&upstreams, &c, &state).is_empty());
    }

    #[test]
    fn weighted_shares_follow_the_weights() {
        let upstreams = ups(&[(0, 5), (0, 3), (0, 2)]);
        let c = live(3);
        let state = WeightedState::default();
        let mut counts = [0usize; 3];
        for _ in 0..10_000 {
            counts[Strategy::Weighted.order(&upstreams, &c, &state)[0]] += 1;
        }
        // Smooth WRR is exact over every full cycle of 10 picks.
        assert_eq!(counts, [5_000, 3_000, 2_000]);
        // And never sends the same upstream more than its share in a row.
        let firsts: Vec<usize> = (0..10)
            .map(|_| Strategy::Weighted.order(&upstreams, &c, &state)[0])
            .collect();
        assert!(
            firsts
                .windows(3)
                .all(|w| !(w[0] == 0 && w[1] == 0 && w[2] == 0)),
            "{firsts:?}"
        );
    }

    #[test]
    fn weighted_redistributes_when_one_is_down() {
        let upstreams = ups(&[(0, 1), (0, 1)]);
        let mut c = live(2);
        c[0].available = false;
        let state = WeightedState::default();
        for _ in 0..10 {
            assert_eq!(Strategy::Weighted.order(&upstreams, &c, &state), vec![1]);
        }
    }

    #[test]
    fn least_cost_picks_the_cheapest_live_upstream() {
        let upstreams = ups(&[(0, 1), (1, 1), (2, 1)]);
        let mut c = live(3);
        c[0].price = Some(0.05);
        c[1].price = Some(0.03);
        c[2].price = None;
        let state = WeightedState::default();
        assert_eq!(
            Strategy::LeastCost.order(&upstreams, &c, &state),
            vec![1, 0, 2]
        );
        c[1].available = false;
        assert_eq!(
            Strategy::LeastCost.order(&upstreams, &c, &state),
            vec![0, 2]
        );
    }

    #[test]
    fn least_loaded_picks_the_emptiest() {
        let upstreams = ups(&[(0, 1), (1, 1), (2, 1)]);
        let mut c = live(3);
        c[0].load = 0.9;
        c[1].load = 0.2;
        c[2].load = 0.5;
        let state = WeightedState::default();
        assert_eq!(
            Strategy::LeastLoaded.order(&upstreams, &c, &state),
            vec![1, 2, 0]
        );
    }
}
