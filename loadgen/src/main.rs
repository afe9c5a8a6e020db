//! `loadgen`: flags in, report out. See the library for everything else.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use clap::Parser;
use loadgen::cli::{Cli, Command, Mode};
use loadgen::scan::ScanPoint;

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Compare(args)) = &cli.command {
        let result = loadgen::compare::compare(args, &mut |line| eprintln!("{line}"))?;
        print!("{}", result.table());
        if let Some(p) = &args.json_out {
            std::fs::write(p, serde_json::to_vec_pretty(&result)?)
                .with_context(|| format!("write {}", p.display()))?;
        }
        if let Some(p) = &args.svg_out {
            result.write_svg(p)?;
        }
        return Ok(());
    }
    let args = &cli.run;
    let (mut cfg, mode) = args.to_config()?;
    cfg.progress = !args.quiet && std::io::stderr().is_terminal();
    let show = |p: &ScanPoint| {
        eprintln!(
            "target {:>10.0} ops/s  achieved {:>10.0} ops/s  p50 {:>8} us  p99 {:>8} us  p99.9 {:>8} us",
            p.target, p.achieved, p.p50_us, p.p99_us, p.p999_us
        )
    };
    match mode {
        Mode::Single => {
            let report = loadgen::run(&cfg)?;
            print!("{}", report.table());
            if cfg.verify {
                let v = report.stats.verify;
                println!(
                    "verify: checked {} corrupt {} wrong-key {} stale {} unexpected-misses {} unverifiable {}",
                    v.checked, v.corrupt, v.wrong_key, v.stale, v.unexpected_misses, v.unverifiable
                );
            }
            if cfg.herd.is_some() {
                let h = report.stats.herd.summary();
                println!(
                    "herd: invalidations {} fills {} fills/invalidation {:.2} ({:.2} per key) hot-misses {} rejected-fills {}",
                    h.invalidations,
                    h.fills,
                    h.fills_per_invalidation,
                    h.fills_per_invalidation / cfg.workload.key_space as f64,
                    h.hot_misses,
                    h.rejected_fills
                );
            }
            if report.stats.gets.errors > 0 && cfg.herd.as_ref().is_some_and(|h| h.leases) {
                eprintln!("note: gets failed; does the server support lease-get/lease-set?");
            }
            if let Some(p) = &args.json_out {
                let json = report.to_json(cfg.verify, cfg.herd.is_some());
                std::fs::write(p, serde_json::to_vec_pretty(&json)?)
                    .with_context(|| format!("write {}", p.display()))?;
            }
            if let Some(prefix) = &args.hdr_out {
                report.write_hdr(prefix)?;
            }
            if cfg.verify && report.stats.verify.failures() > 0 {
                anyhow::bail!("verification failed");
            }
        }
        Mode::Scan(spec) => {
            let points = loadgen::scan::scan(&cfg, &spec, show)?;
            if let Some(p) = &args.json_out {
                std::fs::write(p, serde_json::to_vec_pretty(&points)?)
                    .with_context(|| format!("write {}", p.display()))?;
            }
            if let Some(p) = &args.plot {
                let name = args.servers.join(",");
                loadgen::plot::latency_vs_throughput(
                    p,
                    "latency vs throughput",
                    &[(name, points)],
                )?;
            }
        }
        Mode::Search(spec, steps) => {
            let result = loadgen::scan::search(&cfg, &spec, steps, show)?;
            println!(
                "highest rate with p{} <= {} us: {:.0} ops/s",
                result.quantile * 100.0,
                result.bound_us,
                result.best_rate
            );
            if let Some(p) = &args.json_out {
                std::fs::write(p, serde_json::to_vec_pretty(&result)?)
                    .with_context(|| format!("write {}", p.display()))?;
            }
            if let Some(p) = &args.plot {
                let name = args.servers.join(",");
                let pts: Vec<ScanPoint> = result
                    .points
                    .iter()
                    .filter(|p| p.target > 0.0)
                    .copied()
                    .collect();
                loadgen::plot::latency_vs_throughput(
                    p,
                    "latency vs throughput (search)",
                    &[(name, pts)],
                )?;
            }
        }
    }
    Ok(())
}
