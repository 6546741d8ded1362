//! What one step measured, when a step counts as clean, and the rising-rate sweep.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct StepResult {
    /// Packets per second offered (both directions together).
    pub offered_pps: u64,
    /// Packets sent inside the measured window.
    pub sent: u64,
    /// Of those, how many came out of the relay before the drain ended.
    pub received: u64,
    pub delivered_pps: f64,
    /// Lost fraction (0.001 = 0.1 %).
    pub loss: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// CPU the relay process used during the window, in cores (1.0 = one core busy).
    pub relay_cpu: Option<f64>,
    /// The generator sent less than 98 % of the packets due in the window: the figure is the
    /// generator's limit, not the relay's.
    pub generator_behind: bool,
    /// Longest gap between two turns of the generator's loop (a sign of preemption).
    pub generator_max_stall_us: u64,
    /// CPU the generator used during the window, in cores (it spins: about 1.0).
    pub generator_cpu: Option<f64>,
    /// Share of the generator's loop that found work: near 1.0 it has no headroom left.
    pub generator_busy: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Criteria {
    /// Highest lost fraction still clean.
    pub max_loss: f64,
    /// Highest p99 latency still clean, in microseconds.
    pub max_p99_us: u64,
}

impl StepResult {
    /// Delivered packets per second of relay CPU: what one fully busy core would relay at this
    /// load's efficiency.
    pub fn pps_per_core(&self) -> Option<f64> {
        self.relay_cpu
            .filter(|&c| c > 0.0)
            .map(|c| self.delivered_pps / c)
    }
}

impl Criteria {
    pub fn is_clean(&self, r: &StepResult) -> bool {
        r.sent > 0 && r.loss <= self.max_loss && r.p99_us <= self.max_p99_us
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepResult {
    pub steps: Vec<StepResult>,
    /// Highest offered rate that was clean with every lower rate clean too.
    pub max_clean_pps: u64,
    /// The sweep ended because the generator could not keep up, not because the relay failed:
    /// `max_clean_pps` is then a lower bound.
    pub generator_limited: bool,
    /// The relay was still clean at the highest rate tried: also a lower bound.
    pub never_failed: bool,
}

/// A rising-rate sweep for one relay: the driver asks [`Sweep::next_rate`], runs a step at
/// that rate and hands the result to [`Sweep::record`], so several relays can take turns at
/// each rate (drift in the machine's background load then hits them alike). The sweep ends
/// at the first rate that is not clean twice in a row (one bad step is retried: other
/// processes share the machine) or when the generator cannot keep up.
#[derive(Debug, Clone)]
pub struct Sweep {
    rates: Vec<u64>,
    criteria: Criteria,
    next: usize,
    retried: bool,
    done: bool,
    result: SweepResult,
}

impl Sweep {
    pub fn new(rates: &[u64], criteria: Criteria) -> Sweep {
        Sweep {
            rates: rates.to_vec(),
            criteria,
            next: 0,
            retried: false,
            done: rates.is_empty(),
            result: SweepResult {
                never_failed: true,
                ..SweepResult::default()
            },
        }
    }

    pub fn next_rate(&self) -> Option<u64> {
        if self.done {
            None
        } else {
            self.rates.get(self.next).copied()
        }
    }

    pub fn record(&mut self, r: StepResult) {
        let Some(rate) = self.next_rate() else {
            return;
        };
        let clean = self.criteria.is_clean(&r);
        let behind = r.generator_behind;
        self.result.steps.push(r);
        if !clean && !behind && !self.retried {
            self.retried = true;
            return;
        }
        self.retried = false;
        if behind {
            self.result.generator_limited = true;
            self.result.never_failed = false;
            self.done = true;
        } else if !clean {
            self.result.never_failed = false;
            self.done = true;
        } else {
            self.result.max_clean_pps = rate;
            self.next += 1;
            self.done = self.next >= self.rates.len();
        }
    }

    pub fn result(&self) -> &SweepResult {
        &self.result
    }
}

/// Runs one relay's whole sweep with `run`.
pub fn sweep(
    rates: &[u64],
    criteria: Criteria,
    mut run: impl FnMut(u64) -> StepResult,
) -> SweepResult {
    let mut s = Sweep::new(rates, criteria);
    while let Some(rate) = s.next_rate() {
        s.record(run(rate));
    }
    s.result
}

/// The `q` quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[u32], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    u64::from(sorted[i.min(sorted.len() - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: u64, loss: f64, p99: u64) -> StepResult {
        StepResult {
            offered_pps: rate,
            sent: rate,
            loss,
            p99_us: p99,
            ..StepResult::default()
        }
    }

    const C: Criteria = Criteria {
        max_loss: 0.001,
        max_p99_us: 3000,
    };

    #[test]
    fn stops_at_the_first_rate_that_fails_twice() {
        let mut calls = Vec::new();
        let r = sweep(&[10, 20, 30, 40], C, |rate| {
            calls.push(rate);
            match rate {
                30 => step(rate, 0.0, 9000), // late: not clean
                _ => step(rate, 0.0, 100),
            }
        });
        assert_eq!(calls, [10, 20, 30, 30]);
        assert_eq!(r.max_clean_pps, 20);
        assert_eq!(r.steps.len(), 4);
        assert!(!r.never_failed && !r.generator_limited);
    }

    #[test]
    fn a_single_bad_step_is_retried() {
        let mut first = true;
        let r = sweep(&[10, 20], C, |rate| {
            if rate == 10 && first {
                first = false;
                return step(rate, 0.01, 100);
            }
            step(rate, 0.0, 100)
        });
        assert_eq!(r.max_clean_pps, 20);
        assert!(r.never_failed);
    }

    #[test]
    fn a_generator_that_falls_behind_ends_the_sweep_as_a_lower_bound() {
        let r = sweep(&[10, 20, 30], C, |rate| StepResult {
            generator_behind: rate == 20,
            ..step(rate, 0.0, 100)
        });
        assert_eq!(r.max_clean_pps, 10);
        assert!(r.generator_limited);
    }

    #[test]
    fn quantiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 51);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
