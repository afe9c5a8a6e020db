//! The `stats` family of replies, with memcached 1.6's field names, order and formats
//! (`STAT name value` lines, booleans as `yes`/`no` in settings and `0`/`1` elsewhere as
//! memcached prints them, `rusage_*` as `sec.usec`, replies ending in `END` where memcached's
//! do), so the Prometheus memcached_exporter and other tooling read it unchanged.

use std::fmt::Display;
use std::io::Write as _;
use std::sync::atomic::Ordering;

use crate::server::Shared;
use crate::stats::rusage;

fn stat(out: &mut Vec<u8>, name: impl Display, value: impl Display) {
    let _ = write!(out, "STAT {name} {value}\r\n");
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `stats [args]`. As in memcached, the first word picks the sub-command and any further
/// words are ignored (except by `detail`, which reads the second).
pub fn stats(sh: &Shared, args: &[u8], out: &mut Vec<u8>) {
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let Some(sub) = words.next() else {
        return general(sh, out);
    };
    match sub {
        b"settings" => settings(sh, out),
        b"slabs" => slabs(sh, out),
        b"items" => items(sh, out),
        b"sizes" => sizes(sh, out),
        // memcached sends these status lines without `END`.
        b"sizes_enable" => {
            sh.track_sizes.store(true, Ordering::Relaxed);
            stat(out, "sizes_status", "enabled");
        }
        b"sizes_disable" => {
            sh.track_sizes.store(false, Ordering::Relaxed);
            stat(out, "sizes_status", "disabled");
        }
        b"conns" => conns(sh, out),
        b"cachedump" => {
            let rest = &args[sub.as_ptr() as usize - args.as_ptr() as usize + sub.len()..];
            crate::admin::cachedump(sh, rest, out);
        }
        b"reset" => {
            sh.reset_stats();
            out.extend_from_slice(b"RESET\r\n");
        }
        b"detail" => match words.next() {
            Some(w @ (b"on" | b"off")) => {
                sh.admin.prefix.set_enabled(w == b"on");
                out.extend_from_slice(b"OK\r\n");
            }
            Some(b"dump") => sh.admin.prefix.dump(out),
            _ => {
                out.extend_from_slice(protocol::ErrorKind::StatsDetailUsage.reply().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        },
        _ => out.extend_from_slice(b"ERROR\r\n"),
    }
}

fn general(sh: &Shared, out: &mut Vec<u8>) {
    let t = sh.stats.totals();
    let g = sh.stats.globals(sh.global_counts());
    let e = sh.engine.stats();
    let now = sh.engine.clock().unix_now();
    let (ru_user, ru_sys) = rusage();
    let c = &sh.conns;
    let curr = c.curr.load(Ordering::Relaxed);
    stat(out, "pid", std::process::id());
    stat(out, "uptime", now.saturating_sub(sh.started_unix));
    stat(out, "time", now);
    stat(out, "version", crate::VERSION);
    stat(out, "pointer_size", usize::BITS);
    stat(out, "rusage_user", ru_user);
    stat(out, "rusage_system", ru_sys);
    stat(out, "max_connections", sh.settings.max_conns);
    stat(out, "curr_connections", curr);
    stat(out, "total_connections", g.total_connections);
    stat(out, "rejected_connections", g.rejected_connections);
    stat(out, "connection_structures", curr + 1);
    stat(out, "cmd_get", t.cmd_get);
    stat(out, "cmd_set", t.cmd_set);
    stat(out, "cmd_flush", t.cmd_flush);
    stat(out, "cmd_touch", t.cmd_touch);
    stat(out, "cmd_meta", t.cmd_meta);
    stat(out, "get_hits", t.get_hits);
    stat(out, "get_misses", t.get_misses);
    stat(out, "get_expired", e.get_expired);
    stat(out, "get_flushed", e.get_flushed);
    stat(out, "delete_misses", t.delete_misses);
    stat(out, "delete_hits", t.delete_hits);
    stat(out, "incr_misses", t.incr_misses);
    stat(out, "incr_hits", t.incr_hits);
    stat(out, "decr_misses", t.decr_misses);
    stat(out, "decr_hits", t.decr_hits);
    stat(out, "cas_misses", t.cas_misses);
    stat(out, "cas_hits", t.cas_hits);
    stat(out, "cas_badval", t.cas_badval);
    stat(out, "touch_hits", t.touch_hits);
    stat(out, "touch_misses", t.touch_misses);
    stat(out, "store_too_large", t.store_too_large);
    stat(out, "store_no_memory", t.store_no_memory);
    stat(out, "auth_cmds", 0);
    stat(out, "auth_errors", 0);
    stat(out, "bytes_read", t.bytes_read);
    stat(out, "bytes_written", t.bytes_written);
    stat(out, "limit_maxbytes", e.limit_maxbytes);
    stat(out, "accepting_conns", 1);
    stat(out, "listen_disabled_num", 0);
    stat(out, "time_in_listen_disabled_us", 0);
    stat(out, "threads", sh.settings.threads);
    stat(out, "conn_yields", t.conn_yields);
    stat(out, "hash_power_level", e.hash_power_level);
    stat(out, "hash_bytes", e.hash_bytes);
    stat(out, "hash_is_expanding", u8::from(e.hash_is_expanding));
    stat(out, "slab_reassign_rescues", e.slab_reassign_rescues);
    stat(
        out,
        "slab_reassign_chunk_rescues",
        e.slab_reassign_chunk_rescues,
    );
    stat(
        out,
        "slab_reassign_evictions_nomem",
        e.slab_reassign_evictions_nomem,
    );
    stat(
        out,
        "slab_reassign_inline_reclaim",
        e.slab_reassign_inline_reclaim,
    );
    stat(out, "slab_reassign_busy_items", e.slab_reassign_busy_items);
    stat(
        out,
        "slab_reassign_busy_deletes",
        e.slab_reassign_busy_deletes,
    );
    stat(
        out,
        "slab_reassign_running",
        u8::from(e.slab_reassign_running),
    );
    stat(out, "slabs_moved", e.slabs_moved);
    stat(
        out,
        "lru_crawler_running",
        u8::from(sh.crawler.dump_active.load(Ordering::Relaxed)),
    );
    stat(out, "lru_crawler_starts", g.lru_crawler_starts);
    stat(out, "lru_maintainer_juggles", g.lru_maintainer_juggles);
    stat(out, "malloc_fails", 0);
    let log = sh.watch.stats();
    // Lines are formatted straight into watcher buffers: no per-worker buffer to overflow.
    stat(out, "log_worker_dropped", 0);
    stat(out, "log_worker_written", log.worker_written);
    stat(out, "log_watcher_skipped", log.watcher_skipped);
    stat(out, "log_watcher_sent", log.watcher_sent);
    stat(out, "log_watchers", log.watchers);
    stat(out, "bytes", e.bytes);
    stat(out, "curr_items", e.curr_items);
    stat(out, "total_items", e.total_items);
    stat(out, "slab_global_page_pool", 0);
    stat(out, "expired_unfetched", e.expired_unfetched);
    stat(out, "evicted_unfetched", e.evicted_unfetched);
    stat(out, "evicted_active", e.evicted_active);
    stat(out, "evictions", e.evictions);
    stat(out, "reclaimed", e.reclaimed);
    stat(out, "crawler_reclaimed", e.crawler_reclaimed);
    stat(out, "crawler_items_checked", e.crawler_items_checked);
    stat(out, "lrutail_reflocked", e.lrutail_reflocked);
    stat(out, "moves_to_cold", e.moves_to_cold);
    stat(out, "moves_to_warm", e.moves_to_warm);
    stat(out, "moves_within_lru", e.moves_within_lru);
    stat(out, "direct_reclaims", e.direct_reclaims);
    stat(out, "lru_bumps_dropped", e.lru_bumps_dropped);
    // Leases (mcrouter's lease-get/lease-set); not in memcached.
    stat(out, "lease_tokens_issued", t.lease_tokens);
    stat(out, "lease_hot_misses", t.lease_hot_misses);
    stat(out, "lease_stale_answers", t.lease_stale_answers);
    out.extend_from_slice(b"END\r\n");
}

fn settings(sh: &Shared, out: &mut Vec<u8>) {
    let s = &sh.settings;
    let e = sh.engine.config();
    stat(out, "maxbytes", sh.engine.memory_limit());
    stat(out, "maxconns", s.max_conns);
    stat(out, "tcpport", sh.listen_addr.port());
    stat(out, "udpport", s.udp_port);
    stat(out, "inter", &s.listen);
    stat(out, "verbosity", sh.verbosity.load(Ordering::Relaxed));
    stat(out, "oldest", 0);
    stat(out, "evictions", if s.no_evict { "off" } else { "on" });
    stat(out, "domain_socket", "NULL");
    stat(out, "umask", 700);
    stat(out, "shutdown_command", yes_no(s.enable_shutdown));
    stat(out, "growth_factor", format!("{:.2}", s.growth_factor));
    stat(out, "chunk_size", s.min_space);
    stat(out, "num_threads", s.threads);
    stat(out, "num_threads_per_udp", s.threads);
    stat(
        out,
        "stat_key_prefix",
        char::from(sh.admin.prefix.delimiter()),
    );
    stat(out, "detail_enabled", yes_no(sh.admin.prefix.enabled()));
    stat(out, "reqs_per_event", s.reqs_per_event);
    stat(out, "cas_enabled", yes_no(!s.no_cas));
    stat(out, "tcp_backlog", s.backlog);
    stat(out, "binding_protocol", "ascii");
    stat(out, "auth_enabled_sasl", "no");
    stat(out, "auth_enabled_ascii", "no");
    stat(out, "item_size_max", s.max_item_size);
    stat(out, "maxconns_fast", yes_no(s.maxconns_fast));
    stat(out, "hashpower_init", s.hashpower);
    stat(out, "slab_reassign", yes_no(e.slab_reassign));
    stat(out, "slab_automove", sh.engine.stats().slab_automove);
    stat(
        out,
        "slab_automove_ratio",
        format!("{:.2}", s.slab_automove_ratio),
    );
    stat(out, "slab_automove_window", 30);
    stat(out, "slab_chunk_max", e.page_size / 2);
    stat(
        out,
        "lru_crawler",
        yes_no(sh.crawler.enabled.load(Ordering::Relaxed)),
    );
    stat(
        out,
        "lru_crawler_sleep",
        sh.crawler.sleep_us.load(Ordering::Relaxed),
    );
    stat(
        out,
        "lru_crawler_tocrawl",
        sh.crawler.tocrawl.load(Ordering::Relaxed),
    );
    stat(out, "tail_repair_time", 0);
    stat(out, "flush_enabled", yes_no(!s.disable_flush));
    stat(out, "dump_enabled", yes_no(s.dump_enabled));
    stat(out, "hash_algorithm", "ahash");
    stat(out, "lru_maintainer_thread", yes_no(s.lru_maintainer));
    let lru = sh.engine.lru_params();
    stat(out, "lru_segmented", yes_no(lru.segmented));
    stat(out, "hot_lru_pct", lru.hot_lru_pct);
    stat(out, "warm_lru_pct", lru.warm_lru_pct);
    stat(out, "hot_max_factor", format!("{:.2}", lru.hot_max_factor));
    stat(
        out,
        "warm_max_factor",
        format!("{:.2}", lru.warm_max_factor),
    );
    stat(
        out,
        "temp_lru",
        yes_no(sh.admin.temp_lru.load(Ordering::Relaxed)),
    );
    stat(
        out,
        "temporary_ttl",
        sh.admin.temporary_ttl.load(Ordering::Relaxed),
    );
    stat(out, "idle_timeout", s.idle_timeout);
    // memcached's log buffer sizes (defaults; we keep no such buffers) and its read
    // buffer memory limit (0: none).
    stat(out, "watcher_logbuf_size", 262144);
    stat(out, "worker_logbuf_size", 65536);
    stat(out, "read_buf_mem_limit", 0);
    stat(
        out,
        "track_sizes",
        yes_no(sh.track_sizes.load(Ordering::Relaxed)),
    );
    stat(out, "inline_ascii_response", "no");
    stat(out, "lease_ttl", s.lease_ttl);
    stat(out, "lease_stale_ttl", s.lease_stale_ttl);
    out.extend_from_slice(b"END\r\n");
}

fn slabs(sh: &Shared, out: &mut Vec<u8>) {
    let classes = sh.engine.class_stats();
    let mut active = 0;
    for c in classes.iter().filter(|c| c.total_pages > 0) {
        active += 1;
        let id = c.id;
        stat(out, format_args!("{id}:chunk_size"), c.chunk_size);
        stat(out, format_args!("{id}:chunks_per_page"), c.chunks_per_page);
        stat(out, format_args!("{id}:total_pages"), c.total_pages);
        stat(out, format_args!("{id}:total_chunks"), c.total_chunks);
        stat(out, format_args!("{id}:used_chunks"), c.used_chunks);
        stat(out, format_args!("{id}:free_chunks"), c.free_chunks);
        stat(out, format_args!("{id}:free_chunks_end"), c.free_chunks_end);
        stat(out, format_args!("{id}:get_hits"), c.get_hits);
        stat(out, format_args!("{id}:cmd_set"), c.cmd_set);
        stat(out, format_args!("{id}:delete_hits"), c.delete_hits);
        stat(out, format_args!("{id}:incr_hits"), c.incr_hits);
        stat(out, format_args!("{id}:decr_hits"), c.decr_hits);
        stat(out, format_args!("{id}:cas_hits"), c.cas_hits);
        stat(out, format_args!("{id}:cas_badval"), c.cas_badval);
        stat(out, format_args!("{id}:touch_hits"), c.touch_hits);
    }
    stat(out, "active_slabs", active);
    stat(out, "total_malloced", sh.engine.stats().total_malloced);
    out.extend_from_slice(b"END\r\n");
}

fn items(sh: &Shared, out: &mut Vec<u8>) {
    for c in sh.engine.class_stats().iter().filter(|c| c.number > 0) {
        let id = c.id;
        let p =
            |out: &mut Vec<u8>, name: &str, v: u64| stat(out, format_args!("items:{id}:{name}"), v);
        p(out, "number", c.number);
        p(out, "number_hot", c.number_hot);
        p(out, "number_warm", c.number_warm);
        p(out, "number_cold", c.number_cold);
        p(out, "age_hot", c.age_hot as u64);
        p(out, "age_warm", c.age_warm as u64);
        p(out, "age", c.age as u64);
        p(out, "mem_requested", c.mem_requested);
        p(out, "evicted", c.evicted);
        p(out, "evicted_nonzero", c.evicted_nonzero);
        p(out, "evicted_time", c.evicted_time as u64);
        p(out, "outofmemory", c.outofmemory);
        p(out, "tailrepairs", c.tailrepairs);
        p(out, "reclaimed", c.reclaimed);
        p(out, "expired_unfetched", c.expired_unfetched);
        p(out, "evicted_unfetched", c.evicted_unfetched);
        p(out, "evicted_active", c.evicted_active);
        p(out, "crawler_reclaimed", c.crawler_reclaimed);
        p(out, "crawler_items_checked", c.crawler_items_checked);
        p(out, "lrutail_reflocked", c.lrutail_reflocked);
        p(out, "moves_to_cold", c.moves_to_cold);
        p(out, "moves_to_warm", c.moves_to_warm);
        p(out, "moves_within_lru", c.moves_within_lru);
        p(out, "direct_reclaims", c.direct_reclaims);
        p(out, "hits_to_hot", c.hits_to_hot);
        p(out, "hits_to_warm", c.hits_to_warm);
        p(out, "hits_to_cold", c.hits_to_cold);
        p(out, "hits_to_temp", c.hits_to_temp);
    }
    out.extend_from_slice(b"END\r\n");
}

fn sizes(sh: &Shared, out: &mut Vec<u8>) {
    if !sh.track_sizes.load(Ordering::Relaxed) {
        stat(out, "sizes_status", "disabled");
    } else {
        for b in sh.engine.size_histogram() {
            stat(out, b.size, b.count);
        }
    }
    out.extend_from_slice(b"END\r\n");
}

fn conns(sh: &Shared, out: &mut Vec<u8>) {
    let now = sh.engine.clock().unix_now();
    let listen = sh.listen_addr;
    stat(out, "0:addr", format_args!("tcp:{listen}"));
    stat(out, "0:state", "conn_listening");
    stat(
        out,
        "0:secs_since_last_cmd",
        now.saturating_sub(sh.started_unix),
    );
    for (id, info) in sh.conn_registry.lock().iter() {
        stat(
            out,
            format_args!("{id}:addr"),
            format_args!("tcp:{}", info.peer),
        );
        stat(
            out,
            format_args!("{id}:listen_addr"),
            format_args!("tcp:{listen}"),
        );
        stat(out, format_args!("{id}:state"), info.live.state().name());
        let last = info.live.last_cmd.load(Ordering::Relaxed);
        stat(
            out,
            format_args!("{id}:secs_since_last_cmd"),
            now.saturating_sub(last),
        );
    }
    out.extend_from_slice(b"END\r\n");
}
