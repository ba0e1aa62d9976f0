//! When a failed attempt runs again: exponential backoff with "equal jitter" (half the delay
//! fixed, half random), so retries of jobs that failed together do not return together, and a
//! retry never comes sooner than half its step.

use std::time::Duration;

use rand::Rng;

/// The delay before attempt `attempt + 1`, after `attempt` (1-based) failed: `base · 2^(attempt-1)`
/// capped at `max`, then between half of that and all of it.
pub fn delay(attempt: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let step = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let half = step / 2;
    let spread = step.saturating_sub(half);
    half + spread.mul_f64(rng.gen_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn doubles_per_attempt_within_its_jitter_and_stops_at_the_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..=12 {
            let step = (base * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..50 {
                let d = delay(attempt, base, max, &mut rng);
                assert!(
                    d >= step / 2 && d <= step,
                    "attempt {attempt}: {d:?} vs {step:?}"
                );
            }
        }
        // Huge attempt numbers neither overflow nor exceed the cap.
        assert!(delay(u32::MAX, base, max, &mut rng) <= max);
        // The jitter really spreads: not every value is the same.
        let spread: std::collections::HashSet<_> =
            (0..20).map(|_| delay(3, base, max, &mut rng)).collect();
        assert!(spread.len() > 10);
    }
}
