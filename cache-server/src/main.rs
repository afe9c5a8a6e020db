//! `cache-server`: parse memcached's flags, start the server, print `listening on ADDR`
//! (then `metrics on http://ADDR/metrics` with `--metrics-listen`), stop cleanly on
//! SIGTERM/SIGINT.

use std::io::Write;

use cache_server::config::Settings;
use cache_server::server::Server;

fn main() {
    let settings = match Settings::from_args(std::env::args_os().skip(1)) {
        Ok(s) => s,
        Err(Ok(clap_err)) => clap_err.exit(),
        Err(Err(e)) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    };
    let level = match settings.verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let pidfile = settings.pidfile.clone();
    // Install the handlers before announcing the address, so a SIGTERM sent as soon as a
    // script has read `listening on` is always a clean shutdown.
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]);
    let handle = match Server::start(settings) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cache-server: {e}");
            std::process::exit(71);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", handle.local_addr());
        if let Some(m) = handle.metrics_addr() {
            let _ = writeln!(out, "metrics on http://{m}/metrics");
        }
        let _ = out.flush();
    }
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            eprintln!(
                "cache-server: could not write pid file {}: {e}",
                p.display()
            );
        }
    }
    let stop = handle.shutdown_trigger();
    match signals {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if signals.forever().next().is_some() {
                    stop();
                }
            });
        }
        Err(e) => eprintln!("cache-server: cannot install signal handlers: {e}"),
    }
    let result = handle.join();
    if let Some(p) = &pidfile {
        let _ = std::fs::remove_file(p);
    }
    if let Err(e) = result {
        eprintln!("cache-server: {e}");
        std::process::exit(70);
    }
}
