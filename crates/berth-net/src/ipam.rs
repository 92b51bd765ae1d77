//! Address management: the subnets networks get when none is asked for (Docker's default
//! pools), and the addresses of one subnet handed to containers.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::{Error, Result};

/// Docker's default address pools, in the order it takes them: 172.17–31.0.0/16, then
/// 192.168.0.0/20 cut into /20s.
pub fn default_subnets() -> impl Iterator<Item = Ipv4Net> {
    let wide = (17..=31).filter_map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).ok());
    let narrow =
        (0..16u8).filter_map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    wide.chain(narrow)
}

/// The destinations of the routes of the calling thread's network namespace
/// (/proc/net/route), which a new network's subnet must not overlap.
pub fn host_routes() -> Vec<Ipv4Net> {
    let table = std::fs::read_to_string("/proc/thread-self/net/route").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let destination = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?;
            // The kernel prints these little-endian words as read from memory.
            let destination = Ipv4Addr::from(destination.swap_bytes());
            let prefix = mask.count_ones() as u8;
            (prefix > 0)
                .then(|| Ipv4Net::new(destination, prefix).ok())
                .flatten()
        })
        .collect()
}

/// The addresses of one subnet: the gateway's, and those handed out.
#[derive(Debug, Clone)]
pub struct Pool {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    used: BTreeSet<Ipv4Addr>,
}

impl Pool {
    /// A pool of `subnet` whose gateway is `gateway`, or the subnet's first host address.
    pub fn new(subnet: Ipv4Net, gateway: Option<Ipv4Addr>) -> Result<Self> {
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(Error::Invalid(format!(
                "subnet {subnet} is too small: it leaves no address for containers"
            )));
        }
        let gateway = gateway.unwrap_or_else(|| subnet.hosts().next().unwrap_or(subnet.addr()));
        if !subnet.contains(&gateway) {
            return Err(Error::Invalid(format!(
                "no matching subnet for gateway {gateway}"
            )));
        }
        Ok(Self {
            subnet,
            gateway,
            used: BTreeSet::new(),
        })
    }

    /// The subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The gateway's address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// Hands out `wanted` or, without one, the lowest free address.
    pub fn allocate(&mut self, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        let address = match wanted {
            Some(address) => {
                if !self.subnet.contains(&address) || address == self.subnet.broadcast() {
                    return Err(Error::Invalid(format!(
                        "no configured subnet contains IP address {address}"
                    )));
                }
                if self.used.contains(&address) || address == self.gateway {
                    return Err(Error::Invalid(format!("Address already in use: {address}")));
                }
                address
            }
            None => self
                .subnet
                .hosts()
                .find(|a| *a != self.gateway && !self.used.contains(a))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "no available IPv4 addresses on subnet {}",
                        self.subnet
                    ))
                })?,
        };
        self.used.insert(address);
        Ok(address)
    }

    /// Marks an address a container already holds (found again after a restart).
    pub fn claim(&mut self, address: Ipv4Addr) {
        self.used.insert(address);
    }

    /// Gives an address back.
    pub fn release(&mut self, address: Ipv4Addr) {
        self.used.remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().expect("a subnet")
    }

    #[test]
    fn addresses_skip_the_gateway_and_come_back_when_released() {
        let mut pool = Pool::new(net("10.1.0.0/29"), None).expect("pool");
        assert_eq!(pool.gateway(), Ipv4Addr::new(10, 1, 0, 1));
        let first = pool.allocate(None).expect("address");
        assert_eq!(first, Ipv4Addr::new(10, 1, 0, 2));
        let all: Vec<_> = (0..4)
            .map(|_| pool.allocate(None).expect("address"))
            .collect();
        assert_eq!(all.last(), Some(&Ipv4Addr::new(10, 1, 0, 6)));
        let full = pool.allocate(None).unwrap_err().to_string();
        assert!(full.contains("no available IPv4 addresses"), "{full}");
        pool.release(first);
        assert_eq!(pool.allocate(None).expect("address"), first);
    }

    #[test]
    fn wanted_addresses_are_checked() {
        let mut pool =
            Pool::new(net("10.1.0.0/24"), Some(Ipv4Addr::new(10, 1, 0, 254))).expect("pool");
        assert_eq!(
            pool.allocate(Some(Ipv4Addr::new(10, 1, 0, 1)))
                .expect("address"),
            Ipv4Addr::new(10, 1, 0, 1)
        );
        assert!(pool.allocate(Some(Ipv4Addr::new(10, 1, 0, 254))).is_err());
        assert!(pool.allocate(Some(Ipv4Addr::new(10, 2, 0, 3))).is_err());
        assert!(Pool::new(net("10.1.0.0/24"), Some(Ipv4Addr::new(10, 9, 0, 1))).is_err());
    }

    #[test]
    fn default_subnets_start_where_docker_s_do() {
        let first: Vec<_> = default_subnets().take(2).collect();
        assert_eq!(first, [net("172.17.0.0/16"), net("172.18.0.0/16")]);
        assert_eq!(default_subnets().last(), Some(net("192.168.240.0/20")));
    }
}
