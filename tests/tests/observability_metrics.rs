//! Metrics of both binaries: described once, named by the conventions, and covering every
//! metric the shipped dashboards and alert rules use.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use e2e_tests::observability_support::{
    dashboards_dir, drive_load, metric_names_used, poll, Exposition, MetricsServer,
};

/// Start a cache-server and the local tier (router + in-process cache servers), drive a
/// little load through both, and scrape until every histogram has samples.
fn scraped() -> Result<(Exposition, Exposition, Exposition)> {
    let cs = MetricsServer::start("cache-server", &["-p", "0", "-t", "2"])?;
    let router = MetricsServer::start("mcrouter", &["-p", "0"])?;
    drive_load(cs.server.addr(), 50)?;
    drive_load(router.server.addr(), 50)?;
    // Counted once the collectors (once a second) have run after the load.
    let want = |e: &Exposition, names: &[&str]| names.iter().all(|n| e.total(n) > 0.0);
    let a = poll(Duration::from_secs(10), || {
        let e = cs.scrape()?;
        Ok(want(
            &e,
            &[
                "cache_server_request_duration_seconds_count",
                "cache_server_slab_pages",
            ],
        )
        .then_some(e))
    })?;
    // A router with asynchronous replication and an asynclog (what the local tier does
    // not have), so the replication and asynclog series exist.
    let dir = e2e_tests::router_support::TempDir::new("obs-repl")?;
    let cfg = dir.write(
        "router.json",
        &format!(
            "{{\"pools\": {{\"A\": {{\"servers\": [\"{s}\"]}}, \"B\": {{\"servers\": [\"{s}\"], \"hash\": {{\"salt\": \"b\"}}}}}},
              \"route\": {{\"type\": \"AllInitialRoute\", \"children\": [\"PoolRoute|A\", \"PoolRoute|B\"]}}}}",
            s = cs.server.addr()
        ),
    )?;
    let (cfg, spool) = (cfg.display().to_string(), dir.path().join("spool"));
    let spool = spool.display().to_string();
    let replicating = MetricsServer::start(
        "mcrouter",
        &["-p", "0", "--config-file", &cfg, "--async-dir", &spool],
    )?;
    drive_load(replicating.server.addr(), 20)?;
    let c = poll(Duration::from_secs(10), || {
        let e = replicating.scrape()?;
        Ok(want(
            &e,
            &[
                "mcrouter_replication_lag_seconds_count",
                "mcrouter_requests_total",
            ],
        )
        .then_some(e))
    })?;
    let b = poll(Duration::from_secs(10), || {
        let e = router.scrape()?;
        Ok(want(
            &e,
            &[
                "cache_server_request_duration_seconds_count",
                "cache_server_slab_pages",
                "mcrouter_destination_request_duration_seconds_count",
                "mcrouter_requests_total",
            ],
        )
        .then_some(e))
    })?;
    Ok((a, b, c))
}

#[test]
fn metrics_are_described_once_and_follow_the_naming_rules() -> Result<()> {
    let (cs, router, replicating) = scraped()?;
    cs.check(&["cache_server_"]).context("cache-server")?;
    // The local tier also serves its in-process cache servers' series.
    router
        .check(&["mcrouter_", "cache_server_"])
        .context("mcrouter")?;
    replicating
        .check(&["mcrouter_"])
        .context("mcrouter with replication and asynclog")?;
    for name in [
        "cache_server_commands_total",
        "cache_server_command_results_total",
        "cache_server_connections",
        "cache_server_slab_chunks",
        "cache_server_lease_tokens_issued_total",
    ] {
        assert!(cs.families.contains_key(name), "cache-server lacks {name}");
    }
    for name in [
        "mcrouter_commands_total",
        "mcrouter_destination_tko",
        "mcrouter_in_flight_requests",
        "mcrouter_config_reload_failures_total",
    ] {
        assert!(router.families.contains_key(name), "mcrouter lacks {name}");
    }
    Ok(())
}

#[test]
fn exposition_checker_rejects_duplicates_and_undescribed_metrics() {
    let dup = "# HELP a_total x\n# TYPE a_total counter\n# HELP a_total y\n# TYPE a_total counter\na_total 1\n";
    assert!(Exposition::parse(dup).unwrap().check(&["a_"]).is_err());
    let undescribed = "a_total 1\n";
    assert!(Exposition::parse(undescribed)
        .unwrap()
        .check(&["a_"])
        .is_err());
    let no_suffix = "# HELP a_things x\n# TYPE a_things counter\na_things 1\n";
    assert!(Exposition::parse(no_suffix)
        .unwrap()
        .check(&["a_"])
        .is_err());
    let good = "# HELP a_seconds x\n# TYPE a_seconds histogram\na_seconds_bucket{le=\"1\"} 1\na_seconds_bucket{le=\"+Inf\"} 1\na_seconds_sum 0.5\na_seconds_count 1\n";
    Exposition::parse(good).unwrap().check(&["a_"]).unwrap();
}

/// Every file under dashboards/ that names metrics.
fn shipped_files() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for name in [
        "cachetier-overview.json",
        "mcrouter.json",
        "alerts.yml",
        "prometheus.yml",
    ] {
        let path = dashboards_dir().join(name);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        out.push((name.to_string(), text));
    }
    Ok(out)
}

#[test]
fn dashboards_and_rules_use_only_exported_metrics() -> Result<()> {
    let (cs, router, replicating) = scraped()?;
    let exported: BTreeSet<String> = cs
        .series_names
        .iter()
        .chain(&router.series_names)
        .chain(&replicating.series_names)
        .cloned()
        .collect();
    let mut missing = Vec::new();
    let mut used_total = 0;
    for (file, text) in shipped_files()? {
        let used = metric_names_used(&text);
        used_total += used.len();
        for m in used {
            if !exported.contains(&m) {
                missing.push(format!("{file}: {m}"));
            }
        }
    }
    if !missing.is_empty() {
        bail!("used but not exported:\n  {}", missing.join("\n  "));
    }
    assert!(
        used_total > 20,
        "the dashboards use only {used_total} metrics"
    );
    Ok(())
}

#[test]
fn dashboards_are_grafana_json_with_a_datasource_variable() -> Result<()> {
    for name in ["cachetier-overview.json", "mcrouter.json"] {
        let path = dashboards_dir().join(name);
        let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("parse {}", path.display()))?;
        assert!(d["uid"].is_string() && d["title"].is_string(), "{name}");
        let vars = d["templating"]["list"].as_array().context("templating")?;
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: no prometheus datasource variable"
        );
        let panels = d["panels"].as_array().context("panels")?;
        assert!(!panels.is_empty(), "{name}: no panels");
        let mut ids = BTreeSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_u64().context("panel id")?),
                "{name}: duplicate id"
            );
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}: {}",
                p["title"]
            );
            let targets = p["targets"].as_array().context("targets")?;
            assert!(!targets.is_empty(), "{name}: {} has no queries", p["title"]);
            for t in targets {
                let expr = t["expr"].as_str().context("expr")?;
                assert!(!metric_names_used(expr).is_empty(), "{name}: {expr}");
                assert_eq!(t["datasource"]["uid"], "${datasource}");
            }
        }
    }
    Ok(())
}

#[test]
fn the_local_tier_turns_metrics_on_and_prints_the_url() -> Result<()> {
    // No --metrics-listen: the local tier serves metrics anyway (127.0.0.1:9191, or a free
    // port when that one is taken) and prints the URL after its banner.
    let router = e2e_tests::bins::OurServer::start("mcrouter", &["-p", "0"])?;
    let url = poll(Duration::from_secs(10), || {
        Ok(router
            .next_line(Duration::from_millis(500))
            .and_then(|l| l.strip_prefix("metrics on http://").map(str::to_string)))
    })?;
    let addr = url
        .strip_suffix("/metrics")
        .context("url ends with /metrics")?
        .parse()?;
    let (status, body) = e2e_tests::observability_support::http_get(addr, "/metrics")?;
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE cache_server_items gauge"), "{body}");
    Ok(())
}

/// `cache_server_command_results_total{command="set",result=...}` counts each store outcome.
#[test]
fn cache_server_counts_store_results() -> Result<()> {
    use std::io::{Read, Write};
    let cs = MetricsServer::start("cache-server", &["-p", "0", "-t", "1"])?;
    let mut s = std::net::TcpStream::connect(cs.server.addr())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // stored x2 (set, append), not_stored x2 (add on existing, replace on missing),
    // exists x1 (cas with a wrong unique), not_found x1 (cas on a missing key).
    s.write_all(
        b"set r 0 0 1\r\na\r\nappend r 0 0 1\r\nb\r\nadd r 0 0 1\r\nc\r\nreplace nope 0 0 1\r\nd\r\n\
cas r 0 0 1 999999\r\ne\r\ncas missing 0 0 1 1\r\nf\r\nmn\r\n",
    )?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"MN\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("closed");
        }
        got.extend_from_slice(&buf[..n]);
    }
    let want = [
        ("stored", 2.0),
        ("not_stored", 2.0),
        ("exists", 1.0),
        ("not_found", 1.0),
    ];
    poll(Duration::from_secs(10), || {
        let (_, body) = e2e_tests::observability_support::http_get(cs.metrics, "/metrics")?;
        let value = |result: &str| -> f64 {
            body.lines()
                .filter(|l| {
                    l.starts_with("cache_server_command_results_total{")
                        && l.contains("command=\"set\"")
                        && l.contains(&format!("result=\"{result}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Ok(want.iter().all(|(r, n)| value(r) == *n).then_some(()))
    })
    .context("store results never matched")?;
    Ok(())
}
