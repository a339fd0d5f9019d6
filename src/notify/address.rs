//! Which IP addresses a notification may be sent to (design §4): never into the cluster's or the
//! node's own networks, whatever the URL allowlist says, so a tenant's URL cannot make the
//! operator its proxy.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The rule that refuses an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRule {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `169.254.0.0/16` (with the cloud metadata address), `fe80::/10`.
    LinkLocal,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `240.0.0.0/4` with the broadcast address.
    Reserved,
    /// `100.64.0.0/10` (carrier-grade NAT, often a cluster's pod or node network).
    SharedAddressSpace,
    /// `10/8`, `172.16/12`, `192.168/16`, `fc00::/7`, unless an allowed CIDR names them.
    Private,
    /// An address refused by name, e.g. the apiserver's.
    Refused,
}

impl AddressRule {
    /// The rule in words, for conditions and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressRule::Loopback => "loopback address",
            AddressRule::LinkLocal => "link-local address (cloud metadata)",
            AddressRule::Unspecified => "unspecified address",
            AddressRule::Multicast => "multicast address",
            AddressRule::Reserved => "reserved or broadcast address",
            AddressRule::SharedAddressSpace => "shared address space 100.64.0.0/10",
            AddressRule::Private => "private address not in an allowed CIDR",
            AddressRule::Refused => "refused address (the Kubernetes API server)",
        }
    }
}

impl fmt::Display for AddressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The addresses notifications may be sent to: every public address, the ranges of
/// [`AddressRule`] only when an allowed CIDR names them, the refused addresses never.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
    refused: Vec<IpAddr>,
}

impl AddressPolicy {
    /// A policy that lets `allowed` CIDRs through (`--allow-notification-cidr`, an operator's
    /// explicit choice), and refuses `refused` (the apiserver's addresses) even inside them.
    pub fn new(allowed: Vec<IpNet>, refused: Vec<IpAddr>) -> AddressPolicy {
        let refused = refused.into_iter().map(canonical).collect();
        AddressPolicy { allowed, refused }
    }

    /// Whether a notification may connect to `ip`; the rule that refuses it if not.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressRule> {
        let ip = canonical(ip);
        if self.refused.contains(&ip) {
            return Err(AddressRule::Refused);
        }
        match range_rule(ip) {
            Some(rule) if !self.allowed.iter().any(|net| net.contains(&ip)) => Err(rule),
            _ => Ok(()),
        }
    }
}

/// An IPv6 address that reaches an IPv4 address, as that address: IPv4-mapped
/// (`::ffff:127.0.0.1`) and NAT64 well-known prefix (`64:ff9b::7f00:1`, where a cluster's NAT64
/// gateway would forward it to `127.0.0.1`'s network).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.segments() {
            [0x64, 0xff9b, 0, 0, 0, 0, high, low] => {
                IpAddr::V4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)))
            }
            _ => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        },
        v4 => v4,
    }
}

fn range_rule(ip: IpAddr) -> Option<AddressRule> {
    match ip {
        IpAddr::V4(ip) => v4_rule(ip),
        IpAddr::V6(ip) => v6_rule(ip),
    }
}

fn v4_rule(ip: Ipv4Addr) -> Option<AddressRule> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_loopback() {
        AddressRule::Loopback
    } else if ip.is_link_local() {
        AddressRule::LinkLocal
    } else if a == 0 {
        AddressRule::Unspecified
    } else if ip.is_multicast() {
        AddressRule::Multicast
    } else if a >= 240 {
        AddressRule::Reserved
    } else if a == 100 && (64..128).contains(&b) {
        AddressRule::SharedAddressSpace
    } else if ip.is_private() {
        AddressRule::Private
    } else {
        return None;
    })
}

fn v6_rule(ip: Ipv6Addr) -> Option<AddressRule> {
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        AddressRule::Loopback
    } else if ip.is_unspecified() {
        AddressRule::Unspecified
    } else if ip.is_multicast() {
        AddressRule::Multicast
    } else if first & 0xffc0 == 0xfe80 {
        AddressRule::LinkLocal
    } else if first & 0xfe00 == 0xfc00 {
        AddressRule::Private
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn refuses_the_cluster_and_node_ranges_by_default() {
        let policy = AddressPolicy::default();
        for (addr, rule) in [
            ("127.0.0.1", AddressRule::Loopback),
            ("127.255.0.9", AddressRule::Loopback),
            ("::1", AddressRule::Loopback),
            ("169.254.169.254", AddressRule::LinkLocal),
            ("169.254.0.1", AddressRule::LinkLocal),
            ("fe80::1", AddressRule::LinkLocal),
            ("0.0.0.0", AddressRule::Unspecified),
            ("0.1.2.3", AddressRule::Unspecified),
            ("::", AddressRule::Unspecified),
            ("224.0.0.1", AddressRule::Multicast),
            ("ff02::1", AddressRule::Multicast),
            ("255.255.255.255", AddressRule::Reserved),
            ("100.64.0.1", AddressRule::SharedAddressSpace),
            ("100.127.255.254", AddressRule::SharedAddressSpace),
            ("10.0.0.1", AddressRule::Private),
            ("172.16.0.1", AddressRule::Private),
            ("172.31.255.255", AddressRule::Private),
            ("192.168.1.1", AddressRule::Private),
            ("fd00::1", AddressRule::Private),
            ("fc00::1", AddressRule::Private),
        ] {
            assert_eq!(policy.check(ip(addr)), Err(rule), "{addr}");
        }
    }

    #[test]
    fn an_ipv4_mapped_or_nat64_address_is_judged_as_its_ipv4_address() {
        let policy = AddressPolicy::default();
        assert_eq!(
            policy.check(ip("::ffff:127.0.0.1")),
            Err(AddressRule::Loopback)
        );
        assert_eq!(
            policy.check(ip("::ffff:169.254.169.254")),
            Err(AddressRule::LinkLocal)
        );
        assert_eq!(policy.check(ip("::ffff:8.8.8.8")), Ok(()));
        assert_eq!(
            policy.check(ip("64:ff9b::169.254.169.254")),
            Err(AddressRule::LinkLocal)
        );
        assert_eq!(
            policy.check(ip("64:ff9b::10.0.0.1")),
            Err(AddressRule::Private)
        );
        assert_eq!(policy.check(ip("64:ff9b::8.8.8.8")), Ok(()));
    }

    #[test]
    fn lets_public_addresses_and_the_edges_of_refused_ranges_through() {
        let policy = AddressPolicy::default();
        for addr in [
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "2606:4700::1111",
            "fec0::1",
        ] {
            assert_eq!(policy.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn an_allowed_cidr_lets_only_its_range_through() {
        let policy = AddressPolicy::new(vec!["10.1.0.0/16".parse().unwrap()], vec![]);
        assert_eq!(policy.check(ip("10.1.2.3")), Ok(()));
        assert_eq!(policy.check(ip("10.2.0.1")), Err(AddressRule::Private));
        assert_eq!(policy.check(ip("127.0.0.1")), Err(AddressRule::Loopback));
    }

    #[test]
    fn a_refused_address_stays_refused_inside_an_allowed_cidr() {
        let policy = AddressPolicy::new(
            vec!["10.0.0.0/8".parse().unwrap(), "8.8.0.0/16".parse().unwrap()],
            vec![ip("10.96.0.1"), ip("8.8.4.4")],
        );
        assert_eq!(policy.check(ip("10.96.0.1")), Err(AddressRule::Refused));
        assert_eq!(
            policy.check(ip("::ffff:10.96.0.1")),
            Err(AddressRule::Refused)
        );
        assert_eq!(policy.check(ip("8.8.4.4")), Err(AddressRule::Refused));
        assert_eq!(policy.check(ip("10.96.0.2")), Ok(()));
    }
}
