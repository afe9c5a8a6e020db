//! Storage engine micro-benchmarks: set, get (hit/miss), and a two-thread
//! mixed workload to check that shards let two cores work in parallel.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_server::storage::{
    Engine, EngineConfig, GetOptions, StoreMode, StoreRequest, SystemClock,
};
use criterion::{criterion_group, criterion_main, Criterion};

fn engine() -> Engine {
    Engine::new(EngineConfig::default(), Arc::new(SystemClock::new())).expect("config")
}

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("key:{i}").into_bytes()).collect()
}

fn bench(c: &mut Criterion) {
    let e = engine();
    let ks = keys(100_000);
    let v = [b'x'; 100];
    for k in &ks {
        e.store(&StoreRequest::new(StoreMode::Set, k, &v, 0, 0));
    }
    let mut i = 0usize;
    c.bench_function("set_100b", |b| {
        b.iter(|| {
            i = (i + 1) % ks.len();
            black_box(e.store(&StoreRequest::new(StoreMode::Set, &ks[i], &v, 0, 0)))
        })
    });
    let mut out = Vec::with_capacity(256);
    c.bench_function("get_hit_copy", |b| {
        b.iter(|| {
            i = (i + 1) % ks.len();
            out.clear();
            black_box(e.get(&ks[i], &GetOptions::get(), |it| {
                it.copy_value_into(&mut out)
            }))
        })
    });
    c.bench_function("get_miss", |b| {
        b.iter(|| black_box(e.get(b"no-such-key", &GetOptions::get(), |_| ())))
    });

    let shared = Arc::new(engine());
    for k in &ks {
        shared.store(&StoreRequest::new(StoreMode::Set, k, &v, 0, 0));
    }
    let ks = Arc::new(ks);
    for threads in [1usize, 2] {
        c.bench_function(&format!("mixed_90get_10set_{threads}threads"), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(threads as u64);
                let start = Instant::now();
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        let e = shared.clone();
                        let ks = ks.clone();
                        std::thread::spawn(move || {
                            let mut out = Vec::with_capacity(256);
                            let mut j = t * 7919;
                            for n in 0..per {
                                j = (j + 104_729) % ks.len();
                                if n % 10 == 0 {
                                    e.store(&StoreRequest::new(
                                        StoreMode::Set,
                                        &ks[j],
                                        &[b'y'; 100],
                                        0,
                                        0,
                                    ));
                                } else {
                                    out.clear();
                                    e.get(&ks[j], &GetOptions::get(), |it| {
                                        it.copy_value_into(&mut out)
                                    });
                                }
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().expect("worker");
                }
                // Wall time for `iters` operations spread over the threads.
                start.elapsed()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
