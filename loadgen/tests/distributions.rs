//! Key distributions have the shape they claim (statistical checks with fixed seeds).

use loadgen::workload::{KeyDist, KeyPattern};
use rand::rngs::SmallRng;
use rand::SeedableRng;

const N: usize = 400_000;

fn counts(pattern: KeyPattern, space: u64) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut d = KeyDist::new(pattern, space, 0).unwrap();
    let mut c = vec![0u64; space as usize];
    for _ in 0..N {
        let k = d.sample(&mut rng);
        assert!(k < space, "key {k} outside 0..{space}");
        c[k as usize] += 1;
    }
    c
}

#[test]
fn zipf_follows_the_power_law() {
    for s in [0.8f64, 1.2] {
        let space = 1000u64;
        let c = counts(KeyPattern::Zipf(s), space);
        let h: f64 = (1..=space).map(|i| (i as f64).powf(-s)).sum();
        // Chi-square over the 20 hottest ranks plus the tail as one bucket.
        let mut chi = 0.0;
        let mut tail_obs = N as f64;
        let mut tail_exp = N as f64;
        for (i, &obs) in c.iter().enumerate().take(20) {
            let exp = N as f64 * ((i + 1) as f64).powf(-s) / h;
            chi += (obs as f64 - exp).powi(2) / exp;
            tail_obs -= obs as f64;
            tail_exp -= exp;
        }
        chi += (tail_obs - tail_exp).powi(2) / tail_exp;
        // 20 degrees of freedom: the 99.9th percentile is 45.3.
        assert!(chi < 45.3, "zipf:{s} chi-square {chi:.1} too large");
        // The ratio of rank 1 to rank 2 is 2^s.
        let r = c[0] as f64 / c[1] as f64;
        assert!(
            (r / 2f64.powf(s) - 1.0).abs() < 0.05,
            "zipf:{s} rank1/rank2 {r:.3}"
        );
    }
}

#[test]
fn zipf_is_not_uniform() {
    let c = counts(KeyPattern::Uniform, 1000);
    let r = c[0] as f64 / c[1] as f64;
    assert!((r - 1.0).abs() < 0.25, "uniform rank1/rank2 {r}");
    let max = *c.iter().max().unwrap() as f64;
    let min = *c.iter().min().unwrap() as f64;
    assert!(max / min < 1.6, "uniform spread {max}/{min}");
}

#[test]
fn gaussian_has_mean_sd_and_68_95_shape() {
    let space = 10_000u64;
    let c = counts(KeyPattern::Gaussian, space);
    let total: f64 = c.iter().sum::<u64>() as f64;
    let mean: f64 = c
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum::<f64>()
        / total;
    let var: f64 = c
        .iter()
        .enumerate()
        .map(|(i, &n)| (i as f64 - mean).powi(2) * n as f64)
        .sum::<f64>()
        / total;
    let sd = var.sqrt();
    let want_mean = (space as f64 - 1.0) / 2.0;
    let want_sd = space as f64 / 6.0;
    assert!((mean - want_mean).abs() < want_sd * 0.01, "mean {mean}");
    // Redrawing outside the range trims the tails (0.27% beyond 3 sd) a little.
    assert!((sd / want_sd - 1.0).abs() < 0.02, "sd {sd} vs {want_sd}");
    let within = |k: f64| {
        let lo = (want_mean - k * want_sd).ceil() as usize;
        let hi = (want_mean + k * want_sd).floor() as usize;
        c[lo..=hi].iter().sum::<u64>() as f64 / total
    };
    assert!((within(1.0) - 0.6827).abs() < 0.01, "1 sd: {}", within(1.0));
    assert!(
        (within(2.0) - 0.9545).abs() < 0.006,
        "2 sd: {}",
        within(2.0)
    );
    // The centre is the mode: the middle bucket beats the quarter points by e^(9/8)~3x.
    let band = |centre: usize| c[centre - 50..centre + 50].iter().sum::<u64>() as f64;
    let r = band(5000) / band(2500);
    assert!(
        (r / (9.0f64 / 8.0).exp() - 1.0).abs() < 0.1,
        "centre/quarter {r}"
    );
}

#[test]
fn sequential_visits_every_key_in_order() {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut d = KeyDist::new(KeyPattern::Sequential, 100, 0).unwrap();
    let v: Vec<u64> = (0..250).map(|_| d.sample(&mut rng)).collect();
    for (i, k) in v.iter().enumerate() {
        assert_eq!(*k, i as u64 % 100);
    }
}
