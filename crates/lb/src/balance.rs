//! Picking one backend among candidates: smooth weighted round robin (nginx's) and least
//! requests by the power of two choices (Mitzenmacher; what Envoy and linkerd do), both on
//! effective weights that slow start lowers.
//!
//! Not here: which backends are candidates (`pool`), or time: these are pure picks.

use vitals_core::SplitMix64;

/// One candidate: its index in the pool, effective weight (> 0) and requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub index: usize,
    pub weight: u64,
    pub in_flight: u32,
}

/// Smooth weighted round robin: each pick adds every candidate's weight to its running
/// score and takes the highest, which then pays the total back. Weights 5:1:1 give
/// a a b a c a a, never a burst of five in a row. `scores` is indexed by pool index.
pub fn round_robin(candidates: &[Candidate], scores: &mut [i64]) -> Option<usize> {
    let mut total: i64 = 0;
    let mut best: Option<usize> = None;
    for c in candidates {
        let weight = i64::try_from(c.weight).unwrap_or(i64::MAX / 1024);
        scores[c.index] += weight;
        total += weight;
        if best.is_none_or(|b| scores[c.index] > scores[b]) {
            best = Some(c.index);
        }
    }
    let best = best?;
    scores[best] -= total;
    Some(best)
}

/// The less loaded of two candidates, each drawn with a chance in proportion to its weight;
/// load is requests in flight over weight, and a tie goes to the first draw. Two choices
/// avoid the herd that "always the least loaded" causes when many requests see the same
/// counts at once. Drawing by weight is what makes weights count when nothing is in flight:
/// comparing `(in_flight + 1) / weight` alone sent every sequential request to the heaviest
/// backend (weights 1 and 2: 60 requests out of 60).
pub fn least_requests(candidates: &[Candidate], rng: &mut SplitMix64) -> Option<Candidate> {
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0]),
        _ => {
            let x = draw(candidates, None, rng)?;
            let y = draw(candidates, Some(x.index), rng)?;
            // x.in_flight / x.weight <= y.in_flight / y.weight, without division.
            let load_x = u128::from(x.in_flight) * u128::from(y.weight.max(1));
            let load_y = u128::from(y.in_flight) * u128::from(x.weight.max(1));
            Some(if load_x <= load_y { x } else { y })
        }
    }
}

/// One candidate, other than the one at pool index `except`, with a chance in proportion to
/// its weight.
fn draw(
    candidates: &[Candidate],
    except: Option<usize>,
    rng: &mut SplitMix64,
) -> Option<Candidate> {
    let eligible = || candidates.iter().filter(|c| Some(c.index) != except);
    let total: u64 = eligible().map(|c| c.weight.max(1)).sum();
    let mut point = rng.next_u64() % total.max(1);
    for candidate in eligible() {
        let weight = candidate.weight.max(1);
        if point < weight {
            return Some(*candidate);
        }
        point -= weight;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(weights: &[u64]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Candidate {
                index,
                weight,
                in_flight: 0,
            })
            .collect()
    }

    #[test]
    fn round_robin_is_smooth_and_weighted() {
        let c = candidates(&[5, 1, 1]);
        let mut scores = vec![0; 3];
        let picks: Vec<usize> = (0..7)
            .map(|_| round_robin(&c, &mut scores).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn round_robin_of_equals_takes_turns() {
        let c = candidates(&[1, 1, 1]);
        let mut scores = vec![0; 3];
        let picks: Vec<usize> = (0..6)
            .map(|_| round_robin(&c, &mut scores).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_requests_prefers_the_idle_backend() {
        let mut c = candidates(&[1, 1]);
        c[0].in_flight = 10;
        let mut rng = SplitMix64::new(7);
        for _ in 0..20 {
            assert_eq!(least_requests(&c, &mut rng).unwrap().index, 1);
        }
    }

    /// Issue 17, item 11: weights 1 and 2 with nothing in flight sent 60 of 60 sequential
    /// requests to the heavier backend.
    #[test]
    fn least_requests_shares_by_weight_when_nothing_is_in_flight() {
        let c = candidates(&[1, 2]);
        let mut rng = SplitMix64::new(3);
        let heavy = (0..3000)
            .filter(|_| least_requests(&c, &mut rng).unwrap().index == 1)
            .count();
        assert!(
            (1850..=2150).contains(&heavy),
            "{heavy} of 3000 to weight 2"
        );
    }

    #[test]
    fn least_requests_follows_weights() {
        let mut c = candidates(&[4, 1]);
        // 3 in flight on weight 4 is less load than 1 on weight 1.
        c[0].in_flight = 3;
        c[1].in_flight = 1;
        let mut rng = SplitMix64::new(1);
        assert_eq!(least_requests(&c, &mut rng).unwrap().index, 0);
        assert_eq!(least_requests(&[], &mut rng), None);
    }
}
