//! Recording (per-thread HdrHistograms, per-second buckets) and the final report: the
//! memtier-style table, JSON, and HdrHistogram logs.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::herd::HerdStats;
use crate::verify::VerifyStats;
use crate::ReportError;

/// Highest latency recorded (µs): one hour. Larger values are clamped.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static bounds are valid")
}

/// Counters and latencies of one request type.
#[derive(Debug, Clone)]
pub struct TypeStats {
    pub ops: u64,
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub hist: Histogram<u64>,
}

impl Default for TypeStats {
    fn default() -> Self {
        TypeStats {
            ops: 0,
            hits: 0,
            misses: 0,
            errors: 0,
            bytes_in: 0,
            bytes_out: 0,
            hist: new_histogram(),
        }
    }
}

impl TypeStats {
    #[inline]
    pub fn record(&mut self, latency_us: u64) {
        self.ops += 1;
        self.hist
            .saturating_record(latency_us.clamp(1, MAX_LATENCY_US));
    }

    pub fn merge(&mut self, o: &TypeStats) {
        self.ops += o.ops;
        self.hits += o.hits;
        self.misses += o.misses;
        self.errors += o.errors;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.hist.add(&o.hist).expect("same bounds");
    }

    pub fn reset(&mut self) {
        *self = TypeStats::default();
    }
}

/// One second of a run (all types together).
#[derive(Debug, Clone)]
pub struct Second {
    pub ops: u64,
    pub hits: u64,
    pub misses: u64,
    pub hist: Histogram<u64>,
}

impl Default for Second {
    fn default() -> Self {
        Second {
            ops: 0,
            hits: 0,
            misses: 0,
            hist: new_histogram(),
        }
    }
}

/// Everything one driver thread measured.
#[derive(Debug, Clone)]
pub struct ThreadStats {
    pub sets: TypeStats,
    pub gets: TypeStats,
    pub seconds: Vec<Second>,
    pub verify: VerifyStats,
    pub herd: HerdStats,
    /// Requests that were due (open loop) but never sent before the end of the run.
    pub unsent: u64,
    /// Connection errors (connect failed, reset, malformed reply).
    pub conn_errors: u64,
    /// Open loop: how late each request was sent after its intended time (µs).
    pub send_lag: Histogram<u64>,
    /// Whether sends and receives went through io_uring (else epoll and one send()/recv()
    /// each).
    pub io_uring: bool,
}

impl Default for ThreadStats {
    fn default() -> Self {
        ThreadStats {
            sets: TypeStats::default(),
            gets: TypeStats::default(),
            seconds: Vec::new(),
            verify: VerifyStats::default(),
            herd: HerdStats::default(),
            unsent: 0,
            conn_errors: 0,
            send_lag: new_histogram(),
            io_uring: false,
        }
    }
}

impl ThreadStats {
    pub fn merge(&mut self, o: &ThreadStats) {
        self.sets.merge(&o.sets);
        self.gets.merge(&o.gets);
        if self.seconds.len() < o.seconds.len() {
            self.seconds.resize_with(o.seconds.len(), Second::default);
        }
        for (a, b) in self.seconds.iter_mut().zip(&o.seconds) {
            a.ops += b.ops;
            a.hits += b.hits;
            a.misses += b.misses;
            a.hist.add(&b.hist).expect("same bounds");
        }
        self.verify.merge(&o.verify);
        self.herd.merge(&o.herd);
        self.unsent += o.unsent;
        self.conn_errors += o.conn_errors;
        self.send_lag.add(&o.send_lag).expect("same bounds");
        self.io_uring |= o.io_uring;
    }
}

/// Summary of one type (or the totals), as in the table and the JSON.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TypeSummary {
    pub ops: u64,
    pub ops_per_sec: f64,
    pub hits_per_sec: f64,
    pub misses_per_sec: f64,
    pub errors: u64,
    pub avg_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub kb_per_sec: f64,
}

impl TypeSummary {
    pub fn from_stats(s: &TypeStats, secs: f64) -> Self {
        let secs = secs.max(1e-9);
        let q = |p: f64| {
            if s.hist.is_empty() {
                0
            } else {
                s.hist.value_at_quantile(p)
            }
        };
        TypeSummary {
            ops: s.ops,
            ops_per_sec: s.ops as f64 / secs,
            hits_per_sec: s.hits as f64 / secs,
            misses_per_sec: s.misses as f64 / secs,
            errors: s.errors,
            avg_us: if s.hist.is_empty() {
                0.0
            } else {
                s.hist.mean()
            },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if s.hist.is_empty() { 0 } else { s.hist.max() },
            kb_per_sec: (s.bytes_in + s.bytes_out) as f64 / 1024.0 / secs,
        }
    }
}

/// One point of the per-second time series.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct SecondSummary {
    pub second: u64,
    pub ops: u64,
    pub hits: u64,
    pub misses: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Measured time (after warm-up), seconds.
    pub seconds: f64,
    pub stats: ThreadStats,
    pub totals: TypeStats,
    /// Offered rate in open-loop mode.
    pub target_rate: Option<f64>,
    /// CPU time (user + system) of this process during the run, warm-up and drain
    /// included (from /proc/self/stat).
    pub client_cpu_seconds: Option<f64>,
}

/// The JSON form of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportJson {
    pub duration_s: f64,
    pub target_rate: Option<f64>,
    pub sets: TypeSummary,
    pub gets: TypeSummary,
    pub totals: TypeSummary,
    pub unsent: u64,
    pub connection_errors: u64,
    /// The I/O path the driver threads used: `io_uring` or `epoll`.
    pub io: &'static str,
    /// loadgen's own CPU (user + system) per completed request, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cpu_us_per_request: Option<f64>,
    /// Open loop: p50 / p99 of how late requests were sent after their intended time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_p50_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_p99_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub herd: Option<crate::herd::HerdSummary>,
    pub timeseries: Vec<SecondSummary>,
}

impl Report {
    pub fn new(seconds: f64, stats: ThreadStats, target_rate: Option<f64>) -> Self {
        let mut totals = stats.sets.clone();
        totals.merge(&stats.gets);
        Report {
            seconds,
            stats,
            totals,
            target_rate,
            client_cpu_seconds: None,
        }
    }

    pub fn sets(&self) -> TypeSummary {
        TypeSummary::from_stats(&self.stats.sets, self.seconds)
    }

    pub fn gets(&self) -> TypeSummary {
        TypeSummary::from_stats(&self.stats.gets, self.seconds)
    }

    pub fn total(&self) -> TypeSummary {
        TypeSummary::from_stats(&self.totals, self.seconds)
    }

    /// The I/O path the driver threads used: `io_uring` or `epoll`.
    pub fn io_path(&self) -> &'static str {
        if self.stats.io_uring {
            "io_uring"
        } else {
            "epoll"
        }
    }

    /// loadgen's own CPU per completed request (µs).
    pub fn client_cpu_us_per_request(&self) -> Option<f64> {
        let ops = self.totals.ops;
        self.client_cpu_seconds
            .filter(|_| ops > 0)
            .map(|c| c * 1e6 / ops as f64)
    }

    pub fn to_json(&self, verify: bool, herd: bool) -> ReportJson {
        ReportJson {
            duration_s: self.seconds,
            target_rate: self.target_rate,
            sets: self.sets(),
            gets: self.gets(),
            totals: self.total(),
            unsent: self.stats.unsent,
            connection_errors: self.stats.conn_errors,
            io: self.io_path(),
            client_cpu_us_per_request: self.client_cpu_us_per_request(),
            send_lag_p50_us: (!self.stats.send_lag.is_empty())
                .then(|| self.stats.send_lag.value_at_quantile(0.5)),
            send_lag_p99_us: (!self.stats.send_lag.is_empty())
                .then(|| self.stats.send_lag.value_at_quantile(0.99)),
            verify: verify.then_some(self.stats.verify),
            herd: herd.then(|| self.stats.herd.summary()),
            timeseries: self
                .stats
                .seconds
                .iter()
                .enumerate()
                .map(|(i, s)| SecondSummary {
                    second: i as u64,
                    ops: s.ops,
                    hits: s.hits,
                    misses: s.misses,
                    p50_us: if s.hist.is_empty() {
                        0
                    } else {
                        s.hist.value_at_quantile(0.5)
                    },
                    p99_us: if s.hist.is_empty() {
                        0
                    } else {
                        s.hist.value_at_quantile(0.99)
                    },
                    max_us: if s.hist.is_empty() { 0 } else { s.hist.max() },
                })
                .collect(),
        }
    }

    /// memtier_benchmark's "ALL STATS" table (latencies in ms with µs resolution).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let line = "-".repeat(148);
        let _ = writeln!(out, "ALL STATS");
        let _ = writeln!(out, "{line}");
        let _ = writeln!(
            out,
            "{:<8}{:>14}{:>14}{:>14}{:>15}{:>15}{:>15}{:>15}{:>15}{:>14}{:>9}",
            "Type",
            "Ops/sec",
            "Hits/sec",
            "Misses/sec",
            "Avg. Latency",
            "p50 Latency",
            "p99 Latency",
            "p99.9 Latency",
            "Max Latency",
            "KB/sec",
            "Errors"
        );
        let _ = writeln!(out, "{line}");
        for (name, s, has_hits) in [
            ("Sets", self.sets(), false),
            ("Gets", self.gets(), true),
            ("Totals", self.total(), true),
        ] {
            let ms = |us: f64| format!("{:.3}", us / 1000.0);
            let _ = writeln!(
                out,
                "{:<8}{:>14.2}{:>14}{:>14}{:>15}{:>15}{:>15}{:>15}{:>15}{:>14.2}{:>9}",
                name,
                s.ops_per_sec,
                if has_hits {
                    format!("{:.2}", s.hits_per_sec)
                } else {
                    "---".into()
                },
                if has_hits {
                    format!("{:.2}", s.misses_per_sec)
                } else {
                    "---".into()
                },
                ms(s.avg_us),
                ms(s.p50_us as f64),
                ms(s.p99_us as f64),
                ms(s.p999_us as f64),
                ms(s.max_us as f64),
                s.kb_per_sec,
                s.errors,
            );
        }
        let _ = writeln!(out, "(latencies in ms)");
        if self.stats.unsent > 0 {
            let _ = writeln!(
                out,
                "unsent (due but not sent by the end): {}",
                self.stats.unsent
            );
        }
        if let Some(c) = self.client_cpu_us_per_request() {
            let _ = writeln!(
                out,
                "loadgen CPU per request: {c:.2} us (I/O via {})",
                self.io_path()
            );
        }
        if !self.stats.send_lag.is_empty() {
            let l = &self.stats.send_lag;
            let _ = writeln!(
                out,
                "send lag behind schedule: p50 {} us, p99 {} us, max {} us",
                l.value_at_quantile(0.5),
                l.value_at_quantile(0.99),
                l.max()
            );
        }
        if self.stats.conn_errors > 0 {
            let _ = writeln!(out, "connection errors: {}", self.stats.conn_errors);
        }
        out
    }

    /// `PREFIX_{SETS,GETS,FULL}.hgrm` (percentile distributions, HdrHistogram's text format)
    /// and `PREFIX_FULL.hlog` (per-second interval log, V2 compressed).
    pub fn write_hdr(&self, prefix: &str) -> Result<(), ReportError> {
        for (name, h) in [
            ("SETS", &self.stats.sets.hist),
            ("GETS", &self.stats.gets.hist),
            ("FULL", &self.totals.hist),
        ] {
            let path = format!("{prefix}_{name}.hgrm");
            write_file(Path::new(&path), percentile_text(h).as_bytes())?;
        }
        let path = format!("{prefix}_FULL.hlog");
        let mut buf = Vec::new();
        let mut ser = hdrhistogram::serialization::V2DeflateSerializer::new();
        let mut w = hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder::new()
            .add_comment("loadgen per-second latency histograms (microseconds)")
            .begin_log_with(&mut buf, &mut ser)
            .map_err(|e| ReportError::Io {
                path: path.clone(),
                source: e,
            })?;
        for (i, s) in self.stats.seconds.iter().enumerate() {
            w.write_histogram(
                &s.hist,
                Duration::from_secs(i as u64),
                Duration::from_secs(1),
                None,
            )
            .map_err(|e| ReportError::Hdr(format!("{path}: {e}")))?;
        }
        write_file(Path::new(&path), &buf)
    }
}

/// HdrHistogram's percentile distribution text (what `HistogramLogProcessor` prints), in ms.
pub fn percentile_text(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        for v in h.iter_quantiles(1) {
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 {
                1.0 / (1.0 - q)
            } else {
                f64::INFINITY
            };
            let _ = writeln!(
                out,
                "{:>12.3} {:>14.12} {:>10} {:>14.2}",
                v.value_iterated_to() as f64 / 1000.0,
                q,
                v.count_since_last_iteration(),
                inv
            );
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    out
}

pub fn write_file(path: &Path, data: &[u8]) -> Result<(), ReportError> {
    let mut f = std::fs::File::create(path).map_err(|e| ReportError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    f.write_all(data).map_err(|e| ReportError::Io {
        path: path.display().to_string(),
        source: e,
    })
}
