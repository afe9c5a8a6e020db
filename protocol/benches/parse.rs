//! Parser throughput on a pipelined mix: a get, a 10-key multi-get and a 100-byte set.
//! `cargo bench -p protocol --bench parse` reports bytes/s; requests/s = bytes/s divided by
//! the bytes per request printed at the start.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use protocol::{parse_request, Limits, Request};
use std::hint::black_box;

fn pipeline(repeats: usize) -> (Vec<u8>, usize) {
    let value = vec![b'v'; 100];
    let mut buf = Vec::new();
    for i in 0..repeats {
        buf.extend_from_slice(format!("get key:{i}\r\n").as_bytes());
        buf.extend_from_slice(b"get");
        for j in 0..10 {
            buf.extend_from_slice(format!(" key:{i}:{j}").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(format!("set key:{i} 0 0 {}\r\n", value.len()).as_bytes());
        buf.extend_from_slice(&value);
        buf.extend_from_slice(b"\r\n");
    }
    (buf, repeats * 3)
}

fn bench(c: &mut Criterion) {
    let (buf, requests) = pipeline(1000);
    let limits = Limits::default();
    eprintln!(
        "pipelined mix: {} requests, {} bytes, {:.1} bytes/request",
        requests,
        buf.len(),
        buf.len() as f64 / requests as f64
    );
    let mut g = c.benchmark_group("parse_pipelined_mix");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("bytes", |b| {
        b.iter(|| {
            let mut pos = 0;
            let mut keys = 0usize;
            while let Ok(Some((req, n))) = parse_request(&buf[pos..], &limits) {
                if let Request::Retrieval { keys: ks, .. } = req {
                    keys += ks.iter().count();
                }
                black_box(&req);
                pos += n;
            }
            assert_eq!(pos, buf.len());
            black_box(keys)
        })
    });
    g.throughput(Throughput::Elements(requests as u64));
    g.bench_function("requests", |b| {
        b.iter(|| {
            let mut pos = 0;
            while let Ok(Some((req, n))) = parse_request(&buf[pos..], &limits) {
                black_box(&req);
                pos += n;
            }
            pos
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
