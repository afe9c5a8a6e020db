//! The shipped scrape config and alert rules against the real Prometheus tools:
//! `promtool check`, then a Prometheus scraping our binaries on loopback ports.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use e2e_tests::external::{find_program, free_port, skip, Daemon};
use e2e_tests::observability_support::{
    dashboards_dir, drive_load, http_get, poll, url_encode, MetricsServer,
};

fn promtool(test: &str) -> Option<std::path::PathBuf> {
    let p = find_program("promtool");
    if p.is_none() {
        skip(test, "promtool not installed (Debian package prometheus)");
    }
    p
}

fn run(program: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{} {args:?} failed:\n{}{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn promtool_accepts_the_scrape_config_and_the_rules() -> Result<()> {
    let Some(promtool) = promtool("promtool_accepts_the_scrape_config_and_the_rules") else {
        return Ok(());
    };
    let dir = dashboards_dir();
    run(
        &promtool,
        &[
            "check",
            "config",
            dir.join("prometheus.yml").to_str().unwrap(),
        ],
    )?;
    run(
        &promtool,
        &["check", "rules", dir.join("alerts.yml").to_str().unwrap()],
    )?;
    Ok(())
}

/// The shipped config with its targets moved to our ephemeral ports, scraping every
/// second so the test is quick.
fn rewritten_config(router: &str, cache_server: &str, rules: &Path) -> Result<String> {
    let text = std::fs::read_to_string(dashboards_dir().join("prometheus.yml"))?;
    for needle in [
        "127.0.0.1:9191",
        "127.0.0.1:9150",
        "alerts.yml",
        "scrape_interval: 5s",
    ] {
        if !text.contains(needle) {
            bail!("dashboards/prometheus.yml no longer contains {needle:?}; update this test");
        }
    }
    Ok(text
        .replace("127.0.0.1:9191", router)
        .replace("127.0.0.1:9150", cache_server)
        .replace("- alerts.yml", &format!("- {}", rules.display()))
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("evaluation_interval: 5s", "evaluation_interval: 1s"))
}

/// Query Prometheus; `Some(json)` once the result vector is non-empty.
fn query(prom: std::net::SocketAddr, q: &str) -> Result<Option<serde_json::Value>> {
    let (status, body) = http_get(prom, &format!("/api/v1/query?query={}", url_encode(q)))?;
    if status != 200 {
        bail!("query {q}: HTTP {status}: {body}");
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let result = &v["data"]["result"];
    Ok(result
        .as_array()
        .is_some_and(|r| !r.is_empty())
        .then(|| result.clone()))
}

#[test]
fn prometheus_scrapes_the_tier_with_the_shipped_config() -> Result<()> {
    let test = "prometheus_scrapes_the_tier_with_the_shipped_config";
    let Some(prometheus) = find_program("prometheus") else {
        skip(test, "prometheus not installed (Debian package prometheus)");
        return Ok(());
    };
    let cs = MetricsServer::start("cache-server", &["-p", "0", "-t", "1"])?;
    let router = MetricsServer::start("mcrouter", &["-p", "0"])?;

    let tmp = std::env::temp_dir().join(format!("obs-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("data"))?;
    let rules = tmp.join("alerts.yml");
    std::fs::copy(dashboards_dir().join("alerts.yml"), &rules)?;
    let config = tmp.join("prometheus.yml");
    std::fs::write(
        &config,
        rewritten_config(&router.metrics.to_string(), &cs.metrics.to_string(), &rules)?,
    )?;
    let port = free_port()?;
    let web = format!("127.0.0.1:{port}");
    let mut prom = Daemon::spawn(
        &prometheus,
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", tmp.join("data").display()),
            format!("--web.listen-address={web}"),
            "--log.level=error".into(),
        ],
    )?;
    let prom_addr = web.parse()?;
    prom.wait_for_accept(prom_addr, Duration::from_secs(20))?;

    // Load for a few seconds while Prometheus scrapes every second.
    let result = (|| -> Result<()> {
        let deadline = Duration::from_secs(40);
        let up = poll(deadline, || {
            drive_load(cs.server.addr(), 20)?;
            drive_load(router.server.addr(), 20)?;
            query(prom_addr, "sum(up{job=~\"cache-server|mcrouter\"}) == 2")
        })?;
        assert!(!up.as_array().unwrap().is_empty());
        // The dashboard's request rate and hit ratio, per job.
        for job in ["cache-server", "mcrouter"] {
            let rate = format!("sum(rate(cache_server_commands_total{{job=\"{job}\"}}[10s])) > 0");
            let hit = format!(
                "sum(rate(cache_server_command_results_total{{job=\"{job}\",command=\"get\",result=\"hit\"}}[10s])) \
                 / sum(rate(cache_server_command_results_total{{job=\"{job}\",command=\"get\"}}[10s]))"
            );
            for q in [rate, hit] {
                let r = poll(deadline, || {
                    drive_load(cs.server.addr(), 20)?;
                    drive_load(router.server.addr(), 20)?;
                    query(prom_addr, &q)
                })
                .with_context(|| format!("query {q}"))?;
                let v: f64 = r[0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .context("sample value")?;
                assert!(v > 0.0 && v.is_finite(), "{q} = {v}");
            }
        }
        let routed = "sum(rate(mcrouter_requests_total[10s])) > 0";
        poll(deadline, || {
            drive_load(router.server.addr(), 20)?;
            query(prom_addr, routed)
        })?;
        // The alert rules load and evaluate.
        let (status, body) = http_get(prom_addr, "/api/v1/rules")?;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("McrouterDestinationTKO"), "{body}");
        assert!(!body.contains("\"health\":\"err\""), "{body}");
        Ok(())
    })();
    drop(prom);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
