/// Protocol limits shared by the server, the router, the load generator and the fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key in bytes (memcached's `KEY_MAX_LENGTH`).
    pub max_key_len: usize,
    /// Largest value in bytes accepted by storage commands (memcached's `-I`, default 1 MiB).
    pub max_value_size: usize,
    /// A request line (other than `get`/`gets`) longer than this without a newline closes the
    /// connection without a reply, as memcached does (2048).
    pub max_line_len: usize,
    /// Upper bound for a `get`/`gets` line (memcached has none; we bound memory).
    pub max_get_line_len: usize,
    /// Most tokens in a meta command line, command, key and data length included (memcached
    /// 1.6.18 accepts 19).
    pub max_meta_tokens: usize,
    /// Longest opaque (`O`) token of a meta command.
    pub max_opaque_len: usize,
    /// Refuse keys with control characters (protocol.txt's rule). Off by default because
    /// memcached itself accepts them (it only splits on spaces) and real clients rely on it:
    /// memcaslap's keys start with `\x10` bytes.
    pub strict_keys: bool,
}

impl Limits {
    pub const DEFAULT_MAX_KEY_LEN: usize = 250;
    pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024;
    pub const DEFAULT_MAX_LINE_LEN: usize = 2048;
    pub const DEFAULT_MAX_GET_LINE_LEN: usize = 4 * 1024 * 1024;
    pub const DEFAULT_MAX_META_TOKENS: usize = 19;
    pub const DEFAULT_MAX_OPAQUE_LEN: usize = 32;
    /// Longest complete line executed (memcached's 16 KiB read buffer: a longer line cannot
    /// arrive whole, and it closes the connection once 2048 bytes wait without a newline).
    pub const MAX_WHOLE_LINE: usize = 16 * 1024;

    /// Limits with a different largest value size (`-I`).
    pub fn with_max_value_size(max_value_size: usize) -> Self {
        Limits {
            max_value_size,
            ..Self::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: Self::DEFAULT_MAX_KEY_LEN,
            max_value_size: Self::DEFAULT_MAX_VALUE_SIZE,
            max_line_len: Self::DEFAULT_MAX_LINE_LEN,
            max_get_line_len: Self::DEFAULT_MAX_GET_LINE_LEN,
            max_meta_tokens: Self::DEFAULT_MAX_META_TOKENS,
            max_opaque_len: Self::DEFAULT_MAX_OPAQUE_LEN,
            strict_keys: false,
        }
    }
}
