//! Ketama consistent hashing as done by libmemcached and twemproxy.
//!
//! Two variants exist in the wild and they place keys differently:
//!
//! - [`KetamaVariant::Libmemcached`]: libmemcached's `MEMCACHED_BEHAVIOR_KETAMA`
//!   (`MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA`, unweighted). This is what pylibmc's
//!   `behaviors={"ketama": True}` turns on. libmemcached's `behavior.cc` only switches
//!   the distribution: the key hash stays the default, Jenkins' one-at-a-time, and
//!   `update_continuum()` (`hosts.cc`) puts `MEMCACHED_POINTS_PER_SERVER` = 100 points
//!   per server, each `one_at_a_time("<name>-<i>")` for `i` in `0..100`.
//! - [`KetamaVariant::Md5`]: the original last.fm ketama with MD5, as in libmemcached's
//!   `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED` (pylibmc `ketama_weighted`, which also sets the
//!   key hash to MD5) and twemproxy's `distribution: ketama` with `hash: md5`
//!   (`nc_ketama.c`). Each server gets `floor(weight/total * 160/4 * n) * 4` points:
//!   for `i` in `0..points/4`, the MD5 of `"<name>-<i>"` yields four little-endian
//!   `u32` points. The key hash is the first four MD5 bytes, little-endian.
//!
//! In both, `<name>` is `host:port`, except that the port is left out when it is the
//! default 11211 (libmemcached `update_continuum`, and twemproxy `conf_add_server`
//! "to maintain backward compatibility with libmemcached"). Points are sorted by
//! `(value, server index)`; a key goes to the first point whose value is `>=` its
//! hash, wrapping around to the first point.
//!
//! Quirk kept on purpose: libhashkit's one-at-a-time reads bytes through a signed
//! `char`, so bytes `>= 0x80` are sign-extended before being added.

use md5::{Digest, Md5};

/// libmemcached `MEMCACHED_POINTS_PER_SERVER` (unweighted ketama).
const POINTS_PER_SERVER: u32 = 100;
/// libmemcached `MEMCACHED_POINTS_PER_SERVER_KETAMA` / twemproxy
/// `KETAMA_POINTS_PER_SERVER` (MD5 ketama).
const POINTS_PER_SERVER_MD5: u32 = 160;
/// Points taken from one MD5 digest.
const POINTS_PER_HASH_MD5: u32 = 4;
/// The port left out of continuum names.
const DEFAULT_PORT: u16 = 11211;

/// Which ketama flavour to reproduce; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KetamaVariant {
    /// libmemcached `MEMCACHED_BEHAVIOR_KETAMA` / pylibmc `{"ketama": True}`.
    Libmemcached,
    /// MD5 ketama: libmemcached `KETAMA_WEIGHTED`, twemproxy `ketama` + `md5`.
    Md5,
}

/// Why a server list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KetamaError {
    /// No servers.
    #[error("ketama: the pool has no servers")]
    Empty,
    /// A server string that is not `host` or `host:port`.
    #[error("ketama: server {0:?} is not `host` or `host:port`")]
    BadServer(String),
    /// Weights were given but not one per server, or a weight was 0.
    #[error("ketama: bad weights: {0}")]
    BadWeights(String),
    /// Too many points for a `u32` continuum.
    #[error("ketama: too many servers or points")]
    TooLarge,
}

/// Jenkins' one-at-a-time hash as in libhashkit (`one_at_a_time.cc`), including its
/// sign extension of bytes `>= 0x80` (it reads through `const char*`).
pub fn one_at_a_time(key: &[u8]) -> u32 {
    let mut value: u32 = 0;
    for &b in key {
        value = value.wrapping_add(b as i8 as i32 as u32);
        value = value.wrapping_add(value << 10);
        value ^= value >> 6;
    }
    value = value.wrapping_add(value << 3);
    value ^= value >> 11;
    value = value.wrapping_add(value << 15);
    value
}

/// `u32` number `alignment` (0..4) of the MD5 of `key`, little-endian
/// (libmemcached `ketama_server_hash`, twemproxy `ketama_hash`; alignment 0 is
/// libhashkit's and twemproxy's `md5` key hash).
fn md5_u32s(key: &[u8]) -> [u32; 4] {
    let digest = Md5::digest(key);
    let mut out = [0u32; 4];
    for (o, chunk) in out.iter_mut().zip(digest.chunks_exact(4)) {
        *o = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
    }
    out
}

/// libhashkit's / twemproxy's `md5` key hash: the first four digest bytes, LE.
pub fn md5_hash(key: &[u8]) -> u32 {
    md5_u32s(key)[0]
}

/// The continuum name of a server given as `host` or `host:port`: the port is left
/// out when it is 11211 (or absent, as libmemcached then uses 11211).
pub fn continuum_name(server: &str) -> Result<String, KetamaError> {
    let bad = || KetamaError::BadServer(server.to_owned());
    if server.is_empty() {
        return Err(bad());
    }
    match server.rsplit_once(':') {
        None => Ok(server.to_owned()),
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() || port == 0 {
                return Err(bad());
            }
            Ok(if port == DEFAULT_PORT {
                host.to_owned()
            } else {
                server.to_owned()
            })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    value: u32,
    index: u32,
}

/// A ketama continuum over a fixed list of servers.
#[derive(Debug, Clone)]
pub struct Ketama {
    variant: KetamaVariant,
    points: Vec<Point>,
    servers: usize,
}

impl Ketama {
    /// Builds the continuum for `servers` (each `host` or `host:port`, in pool order)
    /// with equal weights.
    pub fn new<S: AsRef<str>>(variant: KetamaVariant, servers: &[S]) -> Result<Self, KetamaError> {
        Self::build(variant, servers, None)
    }

    /// MD5 ketama with integer weights (twemproxy `host:port:weight`, libmemcached
    /// server weights), one per server, each at least 1.
    pub fn md5_weighted<S: AsRef<str>>(
        servers: &[S],
        weights: &[u32],
    ) -> Result<Self, KetamaError> {
        Self::build(KetamaVariant::Md5, servers, Some(weights))
    }

    fn build<S: AsRef<str>>(
        variant: KetamaVariant,
        servers: &[S],
        weights: Option<&[u32]>,
    ) -> Result<Self, KetamaError> {
        if servers.is_empty() {
            return Err(KetamaError::Empty);
        }
        if u32::try_from(servers.len()).is_err() {
            return Err(KetamaError::TooLarge);
        }
        let names = servers
            .iter()
            .map(|s| continuum_name(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let weights: Vec<u32> = match weights {
            None => vec![1; servers.len()],
            Some(w) if w.len() != servers.len() => {
                return Err(KetamaError::BadWeights(format!(
                    "{} weights for {} servers",
                    w.len(),
                    servers.len()
                )))
            }
            Some(w) if w.contains(&0) => {
                return Err(KetamaError::BadWeights("weights must be at least 1".into()))
            }
            Some(w) => w.to_vec(),
        };

        let mut points = Vec::new();
        match variant {
            KetamaVariant::Libmemcached => {
                for (index, name) in names.iter().enumerate() {
                    for i in 0..POINTS_PER_SERVER {
                        points.push(Point {
                            value: one_at_a_time(format!("{name}-{i}").as_bytes()),
                            index: index as u32,
                        });
                    }
                }
            }
            KetamaVariant::Md5 => {
                let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
                let live = names.len();
                for (index, name) in names.iter().enumerate() {
                    let per_server = md5_points_per_server(weights[index], total, live);
                    for i in 0..per_server / POINTS_PER_HASH_MD5 {
                        for value in md5_u32s(format!("{name}-{i}").as_bytes()) {
                            points.push(Point {
                                value,
                                index: index as u32,
                            });
                        }
                    }
                }
            }
        }
        if points.is_empty() || u32::try_from(points.len()).is_err() {
            return Err(KetamaError::TooLarge);
        }
        points.sort_unstable();
        Ok(Ketama {
            variant,
            points,
            servers: servers.len(),
        })
    }

    /// The variant this continuum reproduces.
    pub fn variant(&self) -> KetamaVariant {
        self.variant
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.servers
    }

    /// Always false: a `Ketama` has at least one server.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of points on the continuum.
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// The key hash this variant uses (one-at-a-time or MD5).
    pub fn key_hash(&self, key: &[u8]) -> u32 {
        match self.variant {
            KetamaVariant::Libmemcached => one_at_a_time(key),
            KetamaVariant::Md5 => md5_hash(key),
        }
    }

    /// The continuum point a hash lands on: the first point `>= hash`, wrapping.
    fn point_for_hash(&self, hash: u32) -> Point {
        let i = self.points.partition_point(|p| p.value < hash);
        self.points.get(i).copied().unwrap_or(self.points[0])
    }

    /// The server index in `0..len()` for `hashable`.
    pub fn pick(&self, hashable: &[u8]) -> usize {
        if self.servers == 1 {
            // libmemcached short-cuts a single server before hashing.
            return 0;
        }
        self.point_for_hash(self.key_hash(hashable)).index as usize
    }
}

/// Points for one server in MD5 ketama, computed in `f32` exactly like
/// libmemcached and twemproxy:
/// `floorf(pct * 160 / 4 * live + 0.0000000001) * 4` with `pct = weight / total`.
fn md5_points_per_server(weight: u32, total: u64, live: usize) -> u32 {
    let pct = weight as f32 / total as f32;
    let share = pct * POINTS_PER_SERVER_MD5 as f32 / POINTS_PER_HASH_MD5 as f32 * live as f32;
    // twemproxy adds the epsilon in double and libmemcached in float; either way the
    // sum is rounded back to float before the floor, which leaves `share` unchanged
    // for any share that can produce a point.
    let rounded = (f64::from(share) + 0.000_000_000_1) as f32;
    (rounded.floor() as u32) * POINTS_PER_HASH_MD5
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libmemcached `test/fixtures/hashes.hpp`: one_at_a_time and md5 outputs.
    #[test]
    fn golden_libhashkit_hashes() {
        let cases: &[(&str, u32, u32)] = &[
            ("apple", 2297466611, 3195025439),
            ("beat", 3902465932, 2556848621),
            ("carrot", 469785835, 3724893440),
            ("daikon", 1937308741, 3332385401),
            ("eggplant", 261917617, 245758794),
            ("flower", 3785641677, 2550894432),
            ("green", 1439605128, 121710495),
            ("hide", 1649152283, 3053817768),
            ("ick", 1493851484, 1250994555),
            ("jack", 1246520657, 1862072655),
            ("kick", 2221159044, 2631955953),
            ("lime", 1973511823, 2951528551),
            ("mushrooms", 384136800, 1451250070),
            ("nectarine", 214358653, 2820856945),
            ("orange", 2379473940, 2060845566),
            ("peach", 4269788650, 3646985608),
            ("quant", 2864377005, 2138080750),
            ("ripen", 2638630052, 217675895),
            ("strawberry", 427683330, 2230934345),
            ("tang", 990491717, 1234361223),
            ("up", 1747111141, 3968582726),
            ("volumne", 792127364, 2455685270),
            ("when", 2599214128, 1293568479),
            ("yellow", 2553037199, 199067604),
            ("zip", 2509838425, 2042482093),
            (
                "The quick brown fox jumps over the lazy dog",
                1369346549,
                2642219166,
            ),
        ];
        for &(key, oaat, md5) in cases {
            assert_eq!(one_at_a_time(key.as_bytes()), oaat, "one_at_a_time({key})");
            assert_eq!(md5_hash(key.as_bytes()), md5, "md5({key})");
        }
    }

    /// Sign extension: byte 0x80 is added as 0xffffff80. With one byte the hash is
    /// `f(v)` where `v` is that (extended) value; the expected numbers below follow
    /// from the algorithm by hand for `v = 0xffffff80` versus `v = 0x80`.
    #[test]
    fn one_at_a_time_sign_extends_high_bytes() {
        fn finish(mut v: u32) -> u32 {
            v = v.wrapping_add(v << 10);
            v ^= v >> 6;
            v = v.wrapping_add(v << 3);
            v ^= v >> 11;
            v.wrapping_add(v << 15)
        }
        assert_eq!(one_at_a_time(&[0x80]), finish(0xffff_ff80));
        assert_ne!(one_at_a_time(&[0x80]), finish(0x80));
        assert_eq!(one_at_a_time(&[0x7f]), finish(0x7f));
        assert_eq!(one_at_a_time(b""), 0);
    }

    #[test]
    fn continuum_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1:11211", Some("127.0.0.1")),
            ("127.0.0.1:11212", Some("127.0.0.1:11212")),
            ("cache-1.example:5000", Some("cache-1.example:5000")),
            ("10.0.1.1", Some("10.0.1.1")),
            ("", None),
            (":11211", None),
            ("host:", None),
            ("host:port", None),
            ("host:0", None),
            ("host:70000", None),
        ];
        for &(server, want) in cases {
            let got = continuum_name(server).ok();
            assert_eq!(got.as_deref(), want, "{server:?}");
        }
    }

    /// libmemcached `test/fixtures/ketama.hpp` (`ketama_test_cases`), used by its
    /// `memcached_ketama_compat` test: MD5 weighted ketama over
    /// `10.0.1.1:11211 600, 10.0.1.2:11211 300, ... 10.0.1.8:11211 100`.
    /// Each row: key, MD5 key hash, value of the continuum point it lands on, server.
    const KETAMA_CASES: &[(&str, u32, u32, &str)] = &[
        ("SVa_]_V41)", 443691461, 445379617, "10.0.1.7"),
        ("*/Z;?V(.\\8", 1422915503, 1428303028, "10.0.1.1"),
        ("30C1*Z*S/_", 1473165754, 1480075959, "10.0.1.2"),
        ("ERR:EC58G>", 2148406511, 2168579133, "10.0.1.7"),
        ("1I=cTMNTKF", 2882686667, 2885206587, "10.0.1.5"),
        ("]VG<`I*Z8)", 1103544263, 1104827657, "10.0.1.5"),
        ("UUTC`-V159", 3716288206, 3727224240, "10.0.1.5"),
        ("@7RU6C6T+Z", 3862737685, 3871917949, "10.0.1.5"),
        ("/XLN0@+36;", 1623269830, 1627683651, "10.0.1.1"),
        ("4(`X;\\V.^c", 373546328, 383925769, "10.0.1.1"),
        ("726bW=9*a4", 4213440020, 4213950705, "10.0.1.7"),
        ("\\`)<B)UE,c", 951096736, 955226069, "10.0.1.1"),
        ("P1[Ma3=K1/", 1989324036, 1994028240, "10.0.1.8"),
        ("C89I.-V?cT", 1604239957, 1606398093, "10.0.1.8"),
        ("D[HE+cFXDK", 2117036136, 2117124014, "10.0.1.3"),
        ("P1L?NAB[)K", 2129972569, 2132542634, "10.0.1.1"),
        ("cDT0)Z5P6,", 176485284, 178675413, "10.0.1.5"),
        ("@JW`+[WAO8", 2720940826, 2743975456, "10.0.1.5"),
        ("\\39DKW^)N_", 3548879868, 3550704865, "10.0.1.3"),
        ("EM75N0+[X1", 1558531507, 1559308507, "10.0.1.4"),
        ("`,SS]NBP,b", 1883545960, 1884847278, "10.0.1.1"),
        ("XX1a9LT+F?", 653487707, 656410408, "10.0.1.5"),
        ("Zc\\-,F-c6V", 1160802451, 1171575728, "10.0.1.5"),
        ("1*RTMC7,03", 1602398012, 1606398093, "10.0.1.8"),
        ("*Xc+V0P>32", 536016577, 539988520, "10.0.1.7"),
        ("U))Fb-(`,.", 4128682289, 4136854163, "10.0.1.7"),
        ("R-08RNTaRT", 3718170086, 3727224240, "10.0.1.5"),
        ("(LHcO203I3", 1007779411, 1014643570, "10.0.1.5"),
        ("=256P+;Qc8", 3976201210, 3976304873, "10.0.1.5"),
        ("OI5XZ_BBT(", 2155922164, 2168579133, "10.0.1.7"),
        ("2TLRL/UL;:", 1086800909, 1095659802, "10.0.1.7"),
        ("WHD\\O1`ZRW", 3087923411, 3095471560, "10.0.1.5"),
        (".=54)_c;=T", 2497691631, 2502731301, "10.0.1.1"),
        (";G<W-XWZ@b", 2888169733, 2888728739, "10.0.1.5"),
        ("(,>E`)FT\\4", 580747448, 581063326, "10.0.1.2"),
        ("HZAU*;P*N]", 2564670474, 2565697267, "10.0.1.7"),
        ("NZ@ZE=O84_", 533335275, 539988520, "10.0.1.7"),
        ("6,cEI`F_P>", 3972869246, 3974773167, "10.0.1.6"),
        ("c,5AQ/T5)6", 2835605783, 2847870057, "10.0.1.8"),
        (".O,>>BT)RX", 3857978174, 3871917949, "10.0.1.5"),
        ("XY\\X::LX50", 1749241099, 1752196488, "10.0.1.6"),
        ("+550F^/.01", 3781824099, 3783248219, "10.0.1.6"),
        ("<.X9E2S5+9", 3232479481, 3234387706, "10.0.1.7"),
        ("]\\.UH8_0a1", 2419699252, 2423002920, "10.0.1.4"),
        ("8(6=(T0/Z0", 728266737, 729026070, "10.0.1.7"),
        ("8*6a;Sc*X+", 4223431086, 4230156966, "10.0.1.2"),
        ("<QW:;3K6;H", 2731158143, 2743975456, "10.0.1.5"),
        ("7C@EY@-Y?_", 760770733, 761576669, "10.0.1.5"),
        ("aPb3E1WD4K", 2500489218, 2502731301, "10.0.1.1"),
        ("?@12R<=1BH", 1494795329, 1502505505, "10.0.1.8"),
    ];

    const COMPAT_SERVERS: [&str; 8] = [
        "10.0.1.1:11211",
        "10.0.1.2:11211",
        "10.0.1.3:11211",
        "10.0.1.4:11211",
        "10.0.1.5:11211",
        "10.0.1.6:11211",
        "10.0.1.7:11211",
        "10.0.1.8:11211",
    ];
    const COMPAT_WEIGHTS: [u32; 8] = [600, 300, 200, 350, 1000, 800, 950, 100];

    #[test]
    fn golden_libmemcached_ketama_compat() {
        let k = Ketama::md5_weighted(&COMPAT_SERVERS, &COMPAT_WEIGHTS).unwrap();
        for &(key, hash, point, server) in KETAMA_CASES {
            assert_eq!(k.key_hash(key.as_bytes()), hash, "hash of {key}");
            assert_eq!(k.point_for_hash(hash).value, point, "point of {key}");
            let want = COMPAT_SERVERS
                .iter()
                .position(|s| s.strip_suffix(":11211") == Some(server))
                .unwrap();
            assert_eq!(k.pick(key.as_bytes()), want, "server of {key}");
        }
        // "VDEAAAAA hashes to fffcd1b5, after the last continuum point": wraps to the
        // first point.
        assert_eq!(k.key_hash(b"VDEAAAAA"), 0xfffc_d1b5);
        assert_eq!(
            k.pick(b"VDEAAAAA"),
            k.points[0].index as usize,
            "wraparound"
        );
        assert!(k.points.last().unwrap().value < 0xfffc_d1b5);
    }

    /// Point counts from the f32 formula, worked by hand: equal weights give 160 per
    /// server; the compat weights (total 4300) give floor(w/4300*40*8)*4.
    #[test]
    fn md5_point_counts() {
        assert_eq!(md5_points_per_server(1, 3, 3), 160);
        assert_eq!(md5_points_per_server(1, 1, 1), 160);
        assert_eq!(md5_points_per_server(1, 7, 7), 160);
        // 600/4300*320 = 44.65 -> 44*4; 100/4300*320 = 7.44 -> 7*4.
        assert_eq!(md5_points_per_server(600, 4300, 8), 176);
        assert_eq!(md5_points_per_server(100, 4300, 8), 28);
        let k = Ketama::new(KetamaVariant::Md5, &["a:1", "b:2", "c:3"]).unwrap();
        assert_eq!(k.points(), 480);
        let k = Ketama::new(KetamaVariant::Libmemcached, &["a:1", "b:2", "c:3"]).unwrap();
        assert_eq!(k.points(), 300);
    }

    /// The unweighted libmemcached continuum: each point is one_at_a_time of
    /// "<name>-<i>", checked against the golden one_at_a_time above by building a
    /// continuum whose names make those strings impossible to confuse.
    #[test]
    fn libmemcached_points_are_one_at_a_time_of_name_dash_index() {
        let k = Ketama::new(KetamaVariant::Libmemcached, &["10.0.0.1:11212", "10.0.0.2"]).unwrap();
        let want_a = one_at_a_time(b"10.0.0.1:11212-0");
        let want_b = one_at_a_time(b"10.0.0.2-99");
        assert!(k.points.contains(&Point {
            value: want_a,
            index: 0
        }));
        assert!(k.points.contains(&Point {
            value: want_b,
            index: 1
        }));
        assert!(k.points.windows(2).all(|w| w[0] <= w[1]));
        // A key whose hash equals a point lands on that point's server.
        assert_eq!(k.point_for_hash(want_b).index, 1);
    }

    #[test]
    fn single_server_and_errors() {
        let k = Ketama::new(KetamaVariant::Libmemcached, &["h:1"]).unwrap();
        assert_eq!(k.pick(b"anything"), 0);
        let none: [&str; 0] = [];
        assert_eq!(
            Ketama::new(KetamaVariant::Md5, &none).unwrap_err(),
            KetamaError::Empty
        );
        assert!(matches!(
            Ketama::new(KetamaVariant::Md5, &["h:x"]),
            Err(KetamaError::BadServer(_))
        ));
        assert!(matches!(
            Ketama::md5_weighted(&["a", "b"], &[1]),
            Err(KetamaError::BadWeights(_))
        ));
        assert!(matches!(
            Ketama::md5_weighted(&["a", "b"], &[1, 0]),
            Err(KetamaError::BadWeights(_))
        ));
    }

    /// Consistency: adding a server only moves keys onto the new server.
    #[test]
    fn adding_a_server_only_moves_keys_to_it() {
        for variant in [KetamaVariant::Libmemcached, KetamaVariant::Md5] {
            let three = Ketama::new(variant, &["a:1", "b:1", "c:1"]).unwrap();
            let four = Ketama::new(variant, &["a:1", "b:1", "c:1", "d:1"]).unwrap();
            let mut moved = 0;
            for i in 0..5000 {
                let key = format!("key:{i}");
                let (x, y) = (three.pick(key.as_bytes()), four.pick(key.as_bytes()));
                if x != y {
                    assert_eq!(y, 3, "{variant:?} {key} moved {x}->{y}");
                    moved += 1;
                }
            }
            assert!((700..2000).contains(&moved), "{variant:?} moved {moved}");
        }
    }
}
