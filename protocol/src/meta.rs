//! Meta command flags (`mg ms md ma`): parsing with memcached 1.6.18's validation rules, and
//! an order-preserving view so replies can echo return flags in the order they were asked for.
//!
//! memcached checks every meta command's flags with one table (`_meta_flag_preparse`), whatever
//! the command: a flag that means nothing for a command (`mg k C1`, `md k v f t`) is accepted
//! and ignored; a letter outside the table (`S`, `Z`, `a`, ...) is `invalid flag`.
//!
//! | flags | token |
//! |-------|-------|
//! | `b c f h k l q s t u v I L O P` (+ `x`) | ignored (`vx` is `v`) |
//! | `N R T` | `safe_strtol` (truncated to 32 bits), else `bad token in command line format` |
//! | `C` (+ `E`) | `safe_strtoull`, else `bad token in command line format` |
//! | `F` | `safe_strtoul` syntax, over 32 bits refused (memcached truncates), else `bad command line format` |
//! | `D` / `J` | `safe_strtoull`, else `invalid numeric delta value` / `... initial value` |
//! | `M` | exactly one character, else `incorrect length for M token`; the command checks it |
//!
//! A repeated letter (or a byte >= 127) is `duplicate flag` and an unknown one `invalid flag`,
//! both at once; token errors let the scan go on and the last one wins. `md` and `ma` answer
//! every one of these with `invalid or duplicate flag`. Then the command's own checks: the `M`
//! mode (`E A P R S` for ms, `I + D -` for ma, upper case only; ignored by mg/md) and an `O`
//! opaque over 32 bytes (ms/md refuse the request; mg/ma fail only after doing the work, see
//! [`MetaFlags::opaque_too_long`]). `E` (explicit CAS) and `x` (md: empty the value) are from
//! newer memcached; 1.6.18 answers `invalid flag` to them (a documented deliberate difference).

use crate::error::ErrorKind;
use crate::limits::Limits;
use crate::number::{mc_strtol, mc_strtoul_flags, mc_strtoull};
use base64::Engine as _;

/// Which meta command a flag set belongs to (decides the accepted flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaCommand {
    Get,
    Set,
    Delete,
    Arithmetic,
}

/// Whether memcached's flag table knows the letter (for every meta command alike).
fn known_flag(flag: u8) -> bool {
    matches!(
        flag,
        b'b' | b'c'
            | b'f'
            | b'h'
            | b'k'
            | b'l'
            | b'q'
            | b's'
            | b't'
            | b'u'
            | b'v'
            | b'x'
            | b'C'
            | b'D'
            | b'E'
            | b'F'
            | b'I'
            | b'J'
            | b'L'
            | b'M'
            | b'N'
            | b'O'
            | b'P'
            | b'R'
            | b'T'
    )
}

/// The `M` token: mode of `ms` (`E A P R S`) or `ma` (`I + D -`). Upper case only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaMode {
    /// ms: `E` add.
    Add,
    /// ms: `A` append.
    Append,
    /// ms: `P` prepend.
    Prepend,
    /// ms: `R` replace.
    Replace,
    /// ms: `S` set (the default).
    Set,
    /// ma: `I` or `+` increment (the default).
    Incr,
    /// ma: `D` or `-` decrement.
    Decr,
}

impl MetaMode {
    pub fn as_char(self) -> u8 {
        match self {
            MetaMode::Add => b'E',
            MetaMode::Append => b'A',
            MetaMode::Prepend => b'P',
            MetaMode::Replace => b'R',
            MetaMode::Set => b'S',
            MetaMode::Incr => b'I',
            MetaMode::Decr => b'D',
        }
    }
}

const fn bit(flag: u8) -> u64 {
    match flag {
        b'a'..=b'z' => 1 << (flag - b'a'),
        b'A'..=b'Z' => 1 << (26 + flag - b'A'),
        _ => 0,
    }
}

/// Parsed meta flags. Typed accessors for the tokens, [`MetaFlags::has`] for the rest and
/// [`MetaFlags::iter`] for the flags in request order. Two flag sets are equal when they hold
/// the same flags in the same order, whatever the spacing on the wire.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaFlags<'a> {
    /// The flags part of the request line, exactly as sent (tokens separated by spaces).
    raw: &'a [u8],
    present: u64,
    /// `O`: opaque echoed back in the reply (at most 32 bytes).
    pub opaque: Option<&'a [u8]>,
    /// `T`: TTL to set (ms, ma) or to touch (mg), or the stale TTL (md with `I`).
    pub ttl: Option<i64>,
    /// `N`: vivify on miss with this TTL.
    pub vivify: Option<i64>,
    /// `R`: win a recache if the remaining TTL is below this.
    pub recache: Option<i64>,
    /// `C`: compare CAS.
    pub compare_cas: Option<u64>,
    /// `E`: explicit new CAS value.
    pub new_cas: Option<u64>,
    /// `F`: client flags (ms).
    pub client_flags: Option<u32>,
    /// `M`: mode (ms, ma).
    pub mode: Option<MetaMode>,
    /// `D`: delta (ma), default 1.
    pub delta: Option<u64>,
    /// `J`: initial value on autovivify (ma), default 0.
    pub initial: Option<u64>,
    /// `O` was longer than 32 bytes on `mg` or `ma`: memcached notices only while writing the
    /// reply, after the fetch (with any `N` vivify, and a `T` touch given before the `O`) or
    /// the increment was done, and answers `CLIENT_ERROR opaque token too long` instead (even
    /// with `q`). `ms` and `md` refuse such a request at parse time.
    pub opaque_too_long: bool,
}

impl<'a> MetaFlags<'a> {
    /// Parse the flag tokens of `cmd`. `key` is the key token (decoded here when `b` is
    /// given, to report a bad encoding in memcached's order); `raw` is the part of the line
    /// after the key (and after the data length for `ms`); `tokens_before` is how many tokens
    /// precede it, to enforce memcached's token limit. Errors are the exact reply for `cmd`.
    pub(crate) fn parse(
        cmd: MetaCommand,
        key: &[u8],
        raw: &'a [u8],
        tokens_before: usize,
        limits: &Limits,
    ) -> Result<Self, ErrorKind> {
        // memcached tokenizes the whole line first: too many tokens wins over bad flags.
        if tokens_before + crate::tokens(raw).count() > limits.max_meta_tokens {
            return Err(if cmd == MetaCommand::Get {
                ErrorKind::TooManyTokens
            } else {
                ErrorKind::TooManyFlags
            });
        }
        let (f, mode) = Self::preparse(key, raw).map_err(|k| match cmd {
            MetaCommand::Get | MetaCommand::Set => k,
            // memcached 1.6.18's md and ma ignore the preparse's message.
            MetaCommand::Delete | MetaCommand::Arithmetic => ErrorKind::InvalidOrDuplicateFlag,
        })?;
        f.check(cmd, mode, limits)
    }

    /// memcached's `_meta_flag_preparse`: the same table for every command. Returns the flags
    /// and the raw `M` character, for the command to judge.
    fn preparse(key: &[u8], raw: &'a [u8]) -> Result<(Self, Option<u8>), ErrorKind> {
        let mut f = MetaFlags {
            raw,
            ..Default::default()
        };
        let mut mode = None;
        // Token errors do not stop the scan; the last message set wins (`F` sets none, so
        // it leaves the previous one, or the default `bad command line format`).
        let mut failed = false;
        let mut message = ErrorKind::BadCommandLineFormat;
        let mut fail = |k: Option<ErrorKind>| {
            failed = true;
            if let Some(k) = k {
                message = k;
            }
        };
        for tok in crate::tokens(raw) {
            let flag = tok[0];
            if flag >= 127 || f.present & bit(flag) != 0 {
                return Err(ErrorKind::DuplicateFlag);
            }
            if !known_flag(flag) {
                return Err(ErrorKind::InvalidFlag);
            }
            f.present |= bit(flag);
            let token = &tok[1..];
            match flag {
                b'b' => {
                    let mut tmp = [0u8; 256];
                    if decode_key(key, &mut tmp).is_err() {
                        fail(Some(ErrorKind::KeyDecode));
                    }
                }
                b'O' => f.opaque = Some(token),
                b'T' | b'N' | b'R' => match mc_strtol(token) {
                    Some(v) => match flag {
                        b'T' => f.ttl = Some(v as i64),
                        b'N' => f.vivify = Some(v as i64),
                        _ => f.recache = Some(v as i64),
                    },
                    None => fail(Some(ErrorKind::BadToken)),
                },
                b'C' => match mc_strtoull(token) {
                    Some(v) => f.compare_cas = Some(v),
                    None => fail(Some(ErrorKind::BadToken)),
                },
                b'E' => match mc_strtoull(token) {
                    Some(v) => f.new_cas = Some(v),
                    None => fail(Some(ErrorKind::BadToken)),
                },
                b'F' => match mc_strtoul_flags(token) {
                    Some(v) => f.client_flags = Some(v),
                    None => fail(None),
                },
                b'D' => match mc_strtoull(token) {
                    Some(v) => f.delta = Some(v),
                    None => fail(Some(ErrorKind::InvalidDeltaValue)),
                },
                b'J' => match mc_strtoull(token) {
                    Some(v) => f.initial = Some(v),
                    None => fail(Some(ErrorKind::InvalidInitialValue)),
                },
                b'M' => {
                    if token.len() == 1 {
                        mode = Some(token[0]);
                    } else {
                        fail(Some(ErrorKind::BadModeLength));
                    }
                }
                // Flags without a token ignore anything after the letter.
                _ => {}
            }
        }
        if failed {
            return Err(message);
        }
        Ok((f, mode))
    }

    /// The command's own checks after the preparse, in memcached's order.
    fn check(
        mut self,
        cmd: MetaCommand,
        mode: Option<u8>,
        limits: &Limits,
    ) -> Result<Self, ErrorKind> {
        // memcached measures the whole token, letter included: `O` + 31 bytes is the most.
        let long_opaque = self
            .opaque
            .is_some_and(|o| 1 + o.len() > limits.max_opaque_len);
        match cmd {
            MetaCommand::Get => self.opaque_too_long = long_opaque,
            MetaCommand::Delete => {
                if long_opaque {
                    return Err(ErrorKind::OpaqueTooLong);
                }
            }
            MetaCommand::Set => {
                self.mode = match mode {
                    None => None,
                    Some(b'E') => Some(MetaMode::Add),
                    Some(b'A') => Some(MetaMode::Append),
                    Some(b'P') => Some(MetaMode::Prepend),
                    Some(b'R') => Some(MetaMode::Replace),
                    Some(b'S') => Some(MetaMode::Set),
                    Some(_) => return Err(ErrorKind::InvalidSetMode),
                };
                if long_opaque {
                    return Err(ErrorKind::OpaqueTooLong);
                }
            }
            MetaCommand::Arithmetic => {
                self.mode = match mode {
                    None => None,
                    Some(b'I' | b'+') => Some(MetaMode::Incr),
                    Some(b'D' | b'-') => Some(MetaMode::Decr),
                    Some(_) => return Err(ErrorKind::InvalidArithMode),
                };
                self.opaque_too_long = long_opaque;
            }
        }
        Ok(self)
    }

    /// Whether the flag letter was given.
    #[inline]
    pub fn has(&self, flag: u8) -> bool {
        self.present & bit(flag) != 0
    }

    /// `q`: suppress the nominal reply (`EN` for mg, `HD` for ms/md/ma, `NF` for md/ma misses
    /// where memcached does).
    #[inline]
    pub fn quiet(&self) -> bool {
        self.has(b'q')
    }

    /// `b`: the key is base64.
    #[inline]
    pub fn base64_key(&self) -> bool {
        self.has(b'b')
    }

    /// The flags in request order: `(letter, token)`; token is empty for plain flags.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        crate::tokens(self.raw).map(|t| (t[0], &t[1..]))
    }

    /// The flags exactly as sent (for re-encoding).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

impl PartialEq for MetaFlags<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for MetaFlags<'_> {}

/// Decode a base64 meta key into `out` the way memcached's `base64_decode` does; returns the
/// decoded length. Like memcached: bytes outside the alphabet are skipped, `=` counts as a
/// zero digit, decoding stops after the first group holding padding, and stray low bits are
/// dropped (`Zm9vYh==` is `foob`). Errors map to `CLIENT_ERROR error decoding key`.
pub fn decode_key(encoded: &[u8], out: &mut [u8; 256]) -> Result<usize, ErrorKind> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            b'=' => Some(0),
            _ => None,
        }
    }
    let count = encoded.iter().filter(|c| digit(**c).is_some()).count();
    if count == 0 || count % 4 != 0 || count / 4 * 3 > out.len() {
        return Err(ErrorKind::KeyDecode);
    }
    let (mut pos, mut n, mut pad) = (0usize, 0usize, 0usize);
    let mut block = [0u8; 4];
    for &c in encoded {
        let Some(d) = digit(c) else { continue };
        if c == b'=' {
            pad += 1;
        }
        block[n] = d;
        n += 1;
        if n == 4 {
            out[pos] = (block[0] << 2) | (block[1] >> 4);
            out[pos + 1] = (block[1] << 4) | (block[2] >> 2);
            out[pos + 2] = (block[2] << 6) | block[3];
            pos += 3;
            n = 0;
            if pad > 0 {
                match pad {
                    1 | 2 => pos -= pad,
                    _ => return Err(ErrorKind::KeyDecode),
                }
                break;
            }
        }
    }
    if pos == 0 {
        return Err(ErrorKind::KeyDecode);
    }
    Ok(pos)
}

/// Append the base64 form of a binary key.
pub fn encode_key(key: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + key.len().div_ceil(3) * 4, 0);
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(key, &mut out[start..])
        .expect("sized exactly");
    out.truncate(start + n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(cmd: MetaCommand, raw: &str) -> Result<MetaFlags<'_>, ErrorKind> {
        MetaFlags::parse(cmd, b"key", raw.as_bytes(), 2, &Limits::default())
    }

    #[test]
    fn table() {
        use ErrorKind::*;
        use MetaCommand::*;
        let f = p(Get, "v f t c s k h l O123 q T30 N5 R7 E9 u b").unwrap_err();
        assert_eq!(f, KeyDecode, "`key` is no base64");
        let f = p(Get, "v f t c s k h l O123 q T30 N5 R7 E9 u").unwrap();
        assert!(f.has(b'v') && f.has(b'q') && f.has(b'u') && !f.base64_key());
        assert_eq!(f.opaque, Some(&b"123"[..]));
        assert_eq!(
            (f.ttl, f.vivify, f.recache, f.new_cas),
            (Some(30), Some(5), Some(7), Some(9))
        );
        let order: Vec<u8> = f.iter().map(|(c, _)| c).collect();
        assert_eq!(order, b"vftcskhlOqTNREu");

        // memcached 1.6.18 checks every command's flags with the same table.
        let cases: &[(MetaCommand, &str, ErrorKind)] = &[
            (Get, "v v", DuplicateFlag),
            (Get, "vv v", DuplicateFlag),
            (Get, "\u{c9}", DuplicateFlag),
            (Get, "zz zz", InvalidFlag),
            (Get, "zz", InvalidFlag),
            (Get, "S3", InvalidFlag),
            (Get, "+", InvalidFlag),
            (Get, "\u{1}", InvalidFlag),
            (Get, "Tabc zz", InvalidFlag),
            (Get, "Tabc", BadToken),
            (Get, "T", BadToken),
            (Get, "Cx", BadToken),
            (Get, "Tabc Jx", InvalidInitialValue),
            (Get, "Jx Tabc", BadToken),
            (Get, "Tabc F", BadToken),
            (Get, "F", BadCommandLineFormat),
            (Get, "Dx", InvalidDeltaValue),
            (Get, "M", BadModeLength),
            (Set, "S3", InvalidFlag),
            (Set, "MX", InvalidSetMode),
            (Set, "Ma", InvalidSetMode),
            (Set, "M", BadModeLength),
            (Set, "MEE", BadModeLength),
            (Set, "MX F", BadCommandLineFormat),
            (Set, "Oabcdefghijabcdefghijabcdefghijab MX", InvalidSetMode),
            (Set, "Oabcdefghijabcdefghijabcdefghijab", OpaqueTooLong),
            (Set, "T1 T2", DuplicateFlag),
            (Set, "Cabc", BadToken),
            (Set, "F4294967296", BadCommandLineFormat),
            (Arithmetic, "MZ", InvalidArithMode),
            (Arithmetic, "Mi", InvalidArithMode),
            (Arithmetic, "MII", InvalidOrDuplicateFlag),
            (Arithmetic, "Dabc", InvalidOrDuplicateFlag),
            (Arithmetic, "D-1", InvalidOrDuplicateFlag),
            (Arithmetic, "zz", InvalidOrDuplicateFlag),
            (Delete, "zz", InvalidOrDuplicateFlag),
            (Delete, "T1 T1", InvalidOrDuplicateFlag),
            (Delete, "Oabcdefghijabcdefghijabcdefghijab", OpaqueTooLong),
        ];
        for (cmd, raw, want) in cases {
            assert_eq!(p(*cmd, raw), Err(*want), "{cmd:?} {raw:?}");
        }
        // Flags that mean nothing for the command are ignored, as are tokens after letters
        // that take none; mg and md ignore the mode.
        for (cmd, raw) in [
            (Get, "vx C1 D1 J1 MZ F9 I L P x"),
            (Delete, "c t v f s MZ D1 J1 N5 R5 h l u F1"),
            (Set, "t v s f h l u D1 J1 R1 L P N5"),
            (Arithmetic, "f s h l u F1 R1 I L P"),
        ] {
            assert!(p(cmd, raw).is_ok(), "{cmd:?} {raw:?}");
        }
        assert_eq!(p(Get, "MZ").unwrap().mode, None);
        assert_eq!(p(Set, "MA").unwrap().mode, Some(MetaMode::Append));
        assert_eq!(p(Set, "ME").unwrap().mode, Some(MetaMode::Add));
        assert_eq!(p(Arithmetic, "M-").unwrap().mode, Some(MetaMode::Decr));
        assert_eq!(p(Arithmetic, "M+").unwrap().mode, Some(MetaMode::Incr));
        assert_eq!(p(Arithmetic, "D5 J7 N0").unwrap().delta, Some(5));
        // `O` + 31 bytes is the longest opaque; mg and ma take a longer one and fail later.
        let o31 = "Oabcdefghijabcdefghijabcdefghija";
        let o32 = "Oabcdefghijabcdefghijabcdefghijab";
        assert_eq!(p(Get, o31).unwrap().opaque.map(|o| o.len()), Some(31));
        assert!(!p(Get, o31).unwrap().opaque_too_long);
        assert!(p(Get, o32).unwrap().opaque_too_long);
        assert!(p(Arithmetic, o32).unwrap().opaque_too_long);
        assert!(!p(Set, o31).unwrap().opaque_too_long);
    }

    #[test]
    fn base64_flag_decodes_the_key_in_scan_order() {
        let l = Limits::default();
        let parse = |key: &str, raw: &'static str| {
            MetaFlags::parse(MetaCommand::Get, key.as_bytes(), raw.as_bytes(), 2, &l)
        };
        assert!(parse("Zm9v", "b k").unwrap().base64_key());
        assert_eq!(parse("!!!", "Tx b"), Err(ErrorKind::KeyDecode));
        assert_eq!(parse("!!!", "b Tx"), Err(ErrorKind::BadToken));
        let md = MetaFlags::parse(MetaCommand::Delete, b"!!!", b"b", 2, &l);
        assert_eq!(md, Err(ErrorKind::InvalidOrDuplicateFlag));
    }

    #[test]
    fn token_limit_counts_command_and_key() {
        // 19 tokens in all are accepted; one more is too long.
        let ok: Vec<String> = "cfhklqstuv"
            .chars()
            .map(String::from)
            .chain(
                ["O1", "T1", "N1", "R1", "E1", "x"]
                    .iter()
                    .map(|s| s.to_string()),
            )
            .collect();
        assert_eq!(ok.len(), 16);
        let mut flags = ok.join(" ");
        assert!(p(MetaCommand::Get, &flags).is_ok());
        flags = "C1 E1 N1 J1 D1 T1 MI O1 q t c v k".to_string();
        let parse = |before| {
            MetaFlags::parse(
                MetaCommand::Arithmetic,
                b"key",
                flags.as_bytes(),
                before,
                &Limits::default(),
            )
        };
        assert!(parse(6).is_ok());
        assert_eq!(parse(7), Err(ErrorKind::TooManyFlags));
        assert_eq!(
            MetaFlags::parse(
                MetaCommand::Get,
                b"k",
                flags.as_bytes(),
                7,
                &Limits::default()
            ),
            Err(ErrorKind::TooManyTokens)
        );
    }

    #[test]
    fn numbers_read_like_memcached() {
        use MetaCommand::*;
        // `T N R`: `safe_strtol`, truncated to 32 bits.
        let f = p(Get, "T4294967396 N-4294967295 R\t7").unwrap();
        assert_eq!((f.ttl, f.vivify, f.recache), (Some(100), Some(1), Some(7)));
        assert_eq!(p(Get, "T4294967295").unwrap().ttl, Some(-1));
        assert_eq!(
            p(Get, "T9223372036854775808").err(),
            Some(ErrorKind::BadToken)
        );
        // `C D J`: `safe_strtoull`, a `-` only while the result stays non-negative.
        let f = p(Arithmetic, "C-0 D-18446744073709551615 J+5").unwrap();
        assert_eq!(
            (f.compare_cas, f.delta, f.initial),
            (Some(0), Some(1), Some(5))
        );
        assert_eq!(
            p(Arithmetic, "D-1").err(),
            Some(ErrorKind::InvalidOrDuplicateFlag)
        );
        assert_eq!(p(Set, "C-1").err(), Some(ErrorKind::BadToken));
        // `F`: the same syntax, but over 32 bits is refused (deliberately, see number.rs).
        assert_eq!(
            p(Set, "F-18446744073709551615").unwrap().client_flags,
            Some(1)
        );
        assert_eq!(
            p(Set, "F4294967297").err(),
            Some(ErrorKind::BadCommandLineFormat)
        );
    }

    #[test]
    fn base64_keys() {
        let mut buf = [0u8; 256];
        let mut dec = |s: &[u8]| decode_key(s, &mut buf).map(|n| buf[..n].to_vec());
        assert_eq!(dec(b"Zm9v").unwrap(), b"foo");
        assert_eq!(dec(b"!!!"), Err(ErrorKind::KeyDecode));
        // memcached's decoder: padding required, stray low bits dropped, `=` is a zero digit,
        // bytes outside the alphabet skipped, nothing read after the padded group.
        assert_eq!(dec(b"Zm8"), Err(ErrorKind::KeyDecode));
        assert_eq!(dec(b"Zm8=").unwrap(), b"fo");
        assert_eq!(dec(b"Zm9vYh==").unwrap(), b"foob");
        assert_eq!(dec(b"Zg=x").unwrap(), b"f\0");
        assert_eq!(dec(b"Zm9v!").unwrap(), b"foo");
        assert_eq!(dec(b"Zg==Zm9v").unwrap(), b"f");
        assert_eq!(dec(b"A==="), Err(ErrorKind::KeyDecode));
        assert_eq!(dec(b"===="), Err(ErrorKind::KeyDecode));
        let mut out = Vec::new();
        encode_key(b"foo\x00\xff", &mut out);
        assert_eq!(dec(&out).unwrap(), b"foo\x00\xff");
    }
}
