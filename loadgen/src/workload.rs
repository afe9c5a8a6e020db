//! The workload model: which keys, which values, which operations (memtier_benchmark's
//! options), and the per-connection generator that turns them into requests without
//! allocating.

use std::fmt;
use std::str::FromStr;

use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Distribution, Normal, Zipf};

use crate::ConfigError;

/// How keys are drawn from `0..key_space`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyPattern {
    /// Every key equally likely.
    Uniform,
    /// Each thread walks the key space in order from its own starting point.
    Sequential,
    /// Normal distribution centred on the middle of the key space, standard deviation
    /// `key_space / 6` (memtier_benchmark's default), redrawn when outside the range.
    Gaussian,
    /// Zipf with exponent `s`: key index `i` (0-based) has weight `1 / (i + 1)^s`.
    Zipf(f64),
}

impl FromStr for KeyPattern {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::Invalid {
            option: "--key-pattern",
            value: s.to_string(),
            expected: "uniform, sequential, gaussian or zipf:S (S > 0)",
        };
        match s {
            "uniform" | "R" => Ok(KeyPattern::Uniform),
            "sequential" | "S" => Ok(KeyPattern::Sequential),
            "gaussian" | "G" => Ok(KeyPattern::Gaussian),
            _ => {
                let exp = s.strip_prefix("zipf:").ok_or_else(bad)?;
                let v: f64 = exp.parse().map_err(|_| bad())?;
                if v.is_finite() && v > 0.0 {
                    Ok(KeyPattern::Zipf(v))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPattern::Uniform => f.write_str("uniform"),
            KeyPattern::Sequential => f.write_str("sequential"),
            KeyPattern::Gaussian => f.write_str("gaussian"),
            KeyPattern::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

/// `A-B` or `N` (inclusive ranges of u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: u64,
    pub max: u64,
}

impl Range {
    pub fn fixed(v: u64) -> Self {
        Range { min: v, max: v }
    }

    pub fn parse(option: &'static str, s: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::Invalid {
            option,
            value: s.to_string(),
            expected: "N or MIN-MAX with MIN <= MAX",
        };
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a, b),
            None => (s, s),
        };
        let min: u64 = a.trim().parse().map_err(|_| bad())?;
        let max: u64 = b.trim().parse().map_err(|_| bad())?;
        if min > max {
            return Err(bad());
        }
        Ok(Range { min, max })
    }

    #[inline]
    pub fn sample(&self, rng: &mut SmallRng) -> u64 {
        if self.min == self.max {
            self.min
        } else {
            rng.random_range(self.min..=self.max)
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

/// `SET:GET` ratio, e.g. `1:10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub sets: u32,
    pub gets: u32,
}

impl FromStr for Ratio {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::Invalid {
            option: "--ratio",
            value: s.to_string(),
            expected: "SET:GET, two whole numbers not both zero (e.g. 1:10)",
        };
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        let sets: u32 = a.parse().map_err(|_| bad())?;
        let gets: u32 = b.parse().map_err(|_| bad())?;
        if sets == 0 && gets == 0 {
            return Err(bad());
        }
        Ok(Ratio { sets, gets })
    }
}

/// Wire protocol used for gets and sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Text,
    Meta,
}

impl FromStr for Proto {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" | "memcache_text" => Ok(Proto::Text),
            "meta" => Ok(Proto::Meta),
            _ => Err(ConfigError::Invalid {
                option: "--protocol",
                value: s.to_string(),
                expected: "text or meta",
            }),
        }
    }
}

/// Everything that decides what requests look like.
#[derive(Debug, Clone)]
pub struct Workload {
    pub ratio: Ratio,
    pub pattern: KeyPattern,
    pub key_space: u64,
    pub key_prefix: String,
    pub value_size: Range,
    pub multiget: u32,
    pub protocol: Proto,
    pub expiry: Range,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            ratio: Ratio { sets: 1, gets: 10 },
            pattern: KeyPattern::Uniform,
            key_space: 10_000,
            key_prefix: "memtier-".to_string(),
            value_size: Range::fixed(32),
            multiget: 1,
            protocol: Proto::Text,
            expiry: Range::fixed(0),
        }
    }
}

impl Workload {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.key_space == 0 {
            return Err(ConfigError::Invalid {
                option: "--key-space",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        if self.multiget == 0 || self.multiget > 1000 {
            return Err(ConfigError::Invalid {
                option: "--multiget",
                value: self.multiget.to_string(),
                expected: "1..=1000",
            });
        }
        if self.key_prefix.len() + 20 > protocol::Limits::DEFAULT_MAX_KEY_LEN
            || self.key_prefix.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err(ConfigError::Invalid {
                option: "--key-prefix",
                value: self.key_prefix.clone(),
                expected: "at most 230 printable bytes without spaces",
            });
        }
        if self.value_size.max as usize > protocol::Limits::DEFAULT_MAX_VALUE_SIZE {
            return Err(ConfigError::Invalid {
                option: "--value-size",
                value: self.value_size.to_string(),
                expected: "at most 1048576 bytes",
            });
        }
        Ok(())
    }
}

/// Draws key indices in `0..n` with one [`KeyPattern`].
#[derive(Debug, Clone)]
pub struct KeyDist {
    n: u64,
    kind: KeyDistKind,
}

#[derive(Debug, Clone)]
enum KeyDistKind {
    Uniform,
    Sequential { next: u64 },
    Gaussian(Normal<f64>),
    Zipf(Zipf<f64>),
}

impl KeyDist {
    /// `start` is where a sequential walk begins (e.g. spread over threads).
    pub fn new(pattern: KeyPattern, n: u64, start: u64) -> Result<Self, ConfigError> {
        let kind = match pattern {
            KeyPattern::Uniform => KeyDistKind::Uniform,
            KeyPattern::Sequential => KeyDistKind::Sequential { next: start % n },
            KeyPattern::Gaussian => {
                let mean = (n as f64 - 1.0) / 2.0;
                let sd = (n as f64 / 6.0).max(1e-9);
                KeyDistKind::Gaussian(Normal::new(mean, sd).map_err(|_| ConfigError::Invalid {
                    option: "--key-pattern",
                    value: "gaussian".into(),
                    expected: "a key space of at least 1",
                })?)
            }
            KeyPattern::Zipf(s) => {
                KeyDistKind::Zipf(Zipf::new(n as f64, s).map_err(|_| ConfigError::Invalid {
                    option: "--key-pattern",
                    value: format!("zipf:{s}"),
                    expected: "zipf:S with S > 0",
                })?)
            }
        };
        Ok(KeyDist { n, kind })
    }

    #[inline]
    pub fn sample(&mut self, rng: &mut SmallRng) -> u64 {
        match &mut self.kind {
            KeyDistKind::Uniform => rng.random_range(0..self.n),
            KeyDistKind::Sequential { next } => {
                let k = *next;
                *next = if k + 1 >= self.n { 0 } else { k + 1 };
                k
            }
            KeyDistKind::Gaussian(d) => loop {
                let v = d.sample(rng).round();
                if v >= 0.0 && v < self.n as f64 {
                    return v as u64;
                }
            },
            KeyDistKind::Zipf(d) => {
                let r = d.sample(rng) as u64;
                r.clamp(1, self.n) - 1
            }
        }
    }
}

/// Append `prefix` + decimal `index` to `out` (no allocation beyond `out`'s capacity).
#[inline]
pub fn write_key(out: &mut Vec<u8>, prefix: &[u8], index: u64) {
    out.extend_from_slice(prefix);
    push_decimal(out, index);
}

#[inline]
pub fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// The key index of a key we generated (`prefix` + decimal), if it is one.
pub fn parse_key(key: &[u8], prefix: &[u8]) -> Option<u64> {
    let digits = key.strip_prefix(prefix)?;
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (d - b'0') as u64;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_options() {
        assert_eq!(
            "zipf:0.99".parse::<KeyPattern>().unwrap(),
            KeyPattern::Zipf(0.99)
        );
        assert!("zipf:0".parse::<KeyPattern>().is_err());
        assert!("zipf".parse::<KeyPattern>().is_err());
        assert_eq!(
            "1:10".parse::<Ratio>().unwrap(),
            Ratio { sets: 1, gets: 10 }
        );
        assert!("0:0".parse::<Ratio>().is_err());
        assert_eq!(
            Range::parse("x", "10-20").unwrap(),
            Range { min: 10, max: 20 }
        );
        assert_eq!(Range::parse("x", "7").unwrap(), Range::fixed(7));
        assert!(Range::parse("x", "20-10").is_err());
    }

    #[test]
    fn keys_round_trip() {
        let mut out = Vec::new();
        write_key(&mut out, b"k:", 1234567);
        assert_eq!(out, b"k:1234567");
        assert_eq!(parse_key(&out, b"k:"), Some(1234567));
        assert_eq!(parse_key(b"k:", b"k:"), None);
        assert_eq!(parse_key(b"x:1", b"k:"), None);
        out.clear();
        push_decimal(&mut out, 0);
        assert_eq!(out, b"0");
    }

    #[test]
    fn sequential_wraps() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut d = KeyDist::new(KeyPattern::Sequential, 3, 2).unwrap();
        let v: Vec<u64> = (0..5).map(|_| d.sample(&mut rng)).collect();
        assert_eq!(v, [2, 0, 1, 2, 0]);
    }
}
