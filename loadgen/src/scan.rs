//! `--scan FROM:TO:STEP` (latency at each offered rate) and `--search pQ:BOUND` (the highest
//! rate whose latency quantile stays under a bound, as mutilate's `--search`).

use std::time::Duration;

use serde::Serialize;

use crate::run::{run, RunConfig};
use crate::{ConfigError, RunError};

/// One measured step.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ScanPoint {
    /// Offered rate (requests/s); 0 for a closed-loop run.
    pub target: f64,
    pub achieved: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

/// `FROM:TO:STEP` offered rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanSpec {
    pub from: f64,
    pub to: f64,
    pub step: f64,
}

impl std::str::FromStr for ScanSpec {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::Invalid {
            option: "--scan",
            value: s.to_string(),
            expected: "FROM:TO:STEP, positive rates with FROM <= TO",
        };
        let v: Vec<f64> = s
            .split(':')
            .map(|x| x.parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match v[..] {
            [from, to, step] if from > 0.0 && to >= from && step > 0.0 => {
                Ok(ScanSpec { from, to, step })
            }
            _ => Err(bad()),
        }
    }
}

impl ScanSpec {
    pub fn rates(&self) -> Vec<f64> {
        let n = ((self.to - self.from) / self.step + 1e-9).floor() as usize + 1;
        (0..n).map(|i| self.from + i as f64 * self.step).collect()
    }
}

/// `pQ:BOUND`, e.g. `p99:1ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchSpec {
    /// Quantile in (0, 1).
    pub quantile: f64,
    pub bound: Duration,
}

impl std::str::FromStr for SearchSpec {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::Invalid {
            option: "--search",
            value: s.to_string(),
            expected: "pQ:BOUND such as p99:1ms or p99.9:500us",
        };
        let (q, b) = s.split_once(':').ok_or_else(bad)?;
        let q: f64 = q
            .strip_prefix('p')
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        if !(q > 0.0 && q < 100.0) {
            return Err(bad());
        }
        let bound = crate::cli::parse_duration(b).map_err(|_| bad())?;
        Ok(SearchSpec {
            quantile: q / 100.0,
            bound,
        })
    }
}

/// One run at `rate` (closed loop for `None`): the point and the value at `quantile` (µs).
fn point(cfg: &RunConfig, rate: Option<f64>, quantile: f64) -> Result<(ScanPoint, u64), RunError> {
    let mut c = cfg.clone();
    c.rate = rate;
    c.progress = false;
    let r = run(&c)?;
    let t = r.total();
    let qv = if r.totals.hist.is_empty() {
        0
    } else {
        r.totals.hist.value_at_quantile(quantile)
    };
    Ok((
        ScanPoint {
            target: rate.unwrap_or(0.0),
            achieved: t.ops_per_sec,
            p50_us: t.p50_us,
            p99_us: t.p99_us,
            p999_us: t.p999_us,
        },
        qv,
    ))
}

/// Run `cfg` once per rate of `spec`.
pub fn scan(
    cfg: &RunConfig,
    spec: &ScanSpec,
    mut each: impl FnMut(&ScanPoint),
) -> Result<Vec<ScanPoint>, RunError> {
    let mut out = Vec::new();
    for rate in spec.rates() {
        let (p, _) = point(cfg, Some(rate), 0.99)?;
        each(&p);
        out.push(p);
    }
    Ok(out)
}

/// The result of `--search`.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub quantile: f64,
    pub bound_us: u64,
    /// Highest offered rate that met the bound (0 if none did).
    pub best_rate: f64,
    pub best: Option<ScanPoint>,
    /// Every run, in the order made (the first is closed loop, to find the ceiling).
    pub points: Vec<ScanPoint>,
}

/// Binary search for the highest offered rate whose quantile stays under the bound:
/// a closed-loop run finds the ceiling, then `steps` halvings of the interval.
pub fn search(
    cfg: &RunConfig,
    spec: &SearchSpec,
    steps: usize,
    mut each: impl FnMut(&ScanPoint),
) -> Result<SearchResult, RunError> {
    let bound_us = spec.bound.as_micros() as u64;
    let mut points = Vec::new();
    let (ceiling, _) = point(cfg, None, spec.quantile)?;
    each(&ceiling);
    points.push(ceiling);
    let (mut lo, mut hi) = (0.0f64, ceiling.achieved.max(1.0) * 1.05);
    let mut best = None;
    for _ in 0..steps {
        let mid = (lo + hi) / 2.0;
        let (p, qv) = point(cfg, Some(mid), spec.quantile)?;
        each(&p);
        points.push(p);
        // Met the bound and actually delivered (almost) the offered rate.
        if qv <= bound_us && p.achieved >= mid * 0.95 {
            lo = mid;
            best = Some(p);
        } else {
            hi = mid;
        }
    }
    Ok(SearchResult {
        quantile: spec.quantile,
        bound_us,
        best_rate: best.map(|b| b.target).unwrap_or(0.0),
        best,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s: ScanSpec = "1000:5000:1000".parse().unwrap();
        assert_eq!(s.rates(), vec![1000.0, 2000.0, 3000.0, 4000.0, 5000.0]);
        assert!("5:1:1".parse::<ScanSpec>().is_err());
        let q: SearchSpec = "p99:1ms".parse().unwrap();
        assert_eq!(q.quantile, 0.99);
        assert_eq!(q.bound, Duration::from_millis(1));
        let q: SearchSpec = "p99.9:250us".parse().unwrap();
        assert!((q.quantile - 0.999).abs() < 1e-12);
        assert!("99:1ms".parse::<SearchSpec>().is_err());
    }
}
