//! The host id: a number fixed for the life of the process that differs between hosts,
//! as mcrouter's `globals::hostid()`. `HostIdRoute` picks its child by it and
//! `KeySplitRoute` its replica, so every request from one router host goes the same way
//! and the hosts of a fleet spread over the choices.
//!
//! - Default: a hash of the first local address that is neither loopback nor link-local
//!   (mcrouter's rule), or 0 when there is none. The hash is ours (MurmurHash64A of the
//!   address bytes, cut to 32 bits), not folly's `IPAddress::hash`, so one host's id
//!   differs from the one mcrouter would compute; only the spread matters.
//! - `--host-id N` sets it (tests, or pinning a host to a replica on purpose).

use std::net::IpAddr;
use std::sync::OnceLock;

static HOST_ID: OnceLock<u32> = OnceLock::new();

/// Set the host id before the first config is built. Returns false when it was already
/// fixed (set before, or computed).
pub fn set(id: u32) -> bool {
    HOST_ID.set(id).is_ok()
}

/// The host id (computed from the local addresses on first use unless [`set`]).
pub fn get() -> u32 {
    *HOST_ID.get_or_init(|| first_routable_addr().map_or(0, |ip| of_addr(&ip)))
}

/// The id of a host whose first routable address is `ip`.
pub fn of_addr(ip: &IpAddr) -> u32 {
    let h = match ip {
        IpAddr::V4(a) => crate::hash::ch3::murmur_hash_64a(&a.octets(), 0),
        IpAddr::V6(a) => crate::hash::ch3::murmur_hash_64a(&a.octets(), 0),
    };
    (h ^ (h >> 32)) as u32
}

fn routable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local() && !a.is_unspecified(),
        IpAddr::V6(a) => {
            !a.is_loopback() && !a.is_unspecified() && (a.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// The first address of `getifaddrs` that is neither loopback nor link-local.
fn first_routable_addr() -> Option<IpAddr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter_map(|ifa| {
            let addr = ifa.address?;
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .find(routable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_link_local_are_skipped() {
        for ip in ["127.0.0.1", "169.254.1.2", "::1", "fe80::1", "0.0.0.0"] {
            assert!(!routable(&ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.5", "192.168.1.1", "2001:db8::1", "fd00::1"] {
            assert!(routable(&ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ids_are_stable_and_spread() {
        let a: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(of_addr(&a), of_addr(&a));
        let ids: std::collections::HashSet<u32> = (1..=200u8)
            .map(|i| of_addr(&IpAddr::from([10, 0, 1, i])))
            .collect();
        assert_eq!(ids.len(), 200);
        // Neighbouring addresses land on all replicas of a small split.
        let mut seen = [0usize; 4];
        for i in 1..=200u8 {
            seen[of_addr(&IpAddr::from([10, 0, 1, i])) as usize % 4] += 1;
        }
        assert!(seen.iter().all(|&n| n > 25), "{seen:?}");
    }
}
