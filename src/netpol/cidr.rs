//! CIDRs (IPv4 and IPv6) with std::net only, and ipBlock matching.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::networking::v1::IPBlock;
use serde::{Serialize, Serializer};

use super::selector::{Cause, Tri};

/// An address range: a network address and a prefix length. IPv4 is kept in the low 32 bits
/// of `net`; the two families never match each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    v6: bool,
    net: u128,
    len: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/64`, or a bare address (one host). Host bits are cleared.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let width = if ip.is_ipv6() { 128 } else { 32 };
        let len = match len {
            None => width,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= width && !l.starts_with('+') => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0-{width}")),
            },
        };
        Ok(Cidr::new(ip, len))
    }

    /// One address.
    pub fn host(ip: IpAddr) -> Cidr {
        Cidr::new(ip, if ip.is_ipv6() { 128 } else { 32 })
    }

    fn new(ip: IpAddr, len: u8) -> Cidr {
        let (v6, raw) = match ip {
            IpAddr::V4(a) => (false, u128::from(u32::from(a))),
            IpAddr::V6(a) => (true, u128::from(a)),
        };
        let mut c = Cidr { v6, net: raw, len };
        c.net &= c.mask(len);
        c
    }

    fn width(&self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    fn mask(&self, len: u8) -> u128 {
        let all = if self.v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        };
        let shift = u32::from(self.width().saturating_sub(len));
        all.checked_shl(shift).unwrap_or(0) & all
    }

    /// Whether every address of `other` is in `self`.
    pub fn contains(&self, other: &Cidr) -> bool {
        self.v6 == other.v6 && other.len >= self.len && other.net & self.mask(self.len) == self.net
    }

    /// Whether the two share an address (CIDRs are nested or disjoint).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn addr(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.net))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.net as u32))
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An ipBlock compiled once; a CIDR that does not parse makes the block "cannot tell".
#[derive(Debug, Clone)]
pub(crate) struct Block {
    cidr: Cidr,
    except: Vec<Cidr>,
}

impl Block {
    pub(crate) fn compile(b: &IPBlock) -> Result<Block, String> {
        let cidr = Cidr::parse(&b.cidr)?;
        let except = b
            .except
            .iter()
            .flatten()
            .map(|e| Cidr::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Block { cidr, except })
    }

    /// Yes when all of `peer` is in the block and in no except; No when none of it can be;
    /// cannot tell when only part of it is.
    pub(crate) fn matches(&self, peer: &Cidr) -> Tri {
        if !self.cidr.overlaps(peer) || self.except.iter().any(|e| e.contains(peer)) {
            Tri::No
        } else if self.cidr.contains(peer) && !self.except.iter().any(|e| e.overlaps(peer)) {
            Tri::Yes
        } else {
            Tri::Unknown(Cause::CidrPartial)
        }
    }
}
