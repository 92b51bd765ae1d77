//! Connect-time Service balancing, as Cilium's socket load balancer does it: a BPF
//! program on the cgroup `connect4` hook picks a Service's endpoint once, when a socket
//! connects to its cluster IP, and rewrites the address the socket connects to. The
//! connection then runs straight to the pod — no NAT, no conntrack rewriting on each of
//! its packets — which is what keeps a Service as fast as its pod's own address.
//!
//! It covers TCP to cluster IPs without session affinity; everything else (UDP, affinity,
//! node ports, Services without endpoints, connections made while no agent runs) still
//! meets the nftables rules of [`crate::ServiceProxy`], which stay in place underneath.
//!
//! The program runs for the node's pods (linked to their cgroup) and for any process in
//! the node's own network namespace (linked to the root cgroup, checking the namespace),
//! so agents of several test hosts on one machine each balance only their own. The links
//! live as long as the agent's process: an agent that dies leaves the nftables rules.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::firewall::Protocol;
use crate::{Context, Error, Result, ServiceRoute};
use berth_bpf::{FP, Helper, Insn, Map, Program, Reg, Size};

/// `BPF_PROG_TYPE_CGROUP_SOCK_ADDR` and its `BPF_CGROUP_INET4_CONNECT` hook.
const SOCK_ADDR: u32 = 18;
const INET4_CONNECT: u32 = 10;

/// Offsets in `struct bpf_sock_addr`, the program's context.
const USER_IP4: i16 = 4;
const USER_PORT: i16 = 24;
const PROTOCOL: i16 = 36;

/// The most frontends × (endpoints + 1) the map holds.
const CAPACITY: u32 = 1 << 20;

/// A key of the map: a Service's address as a socket names it (network byte order), and
/// a slot — 0 holds how many endpoints it has, 1 to n the endpoints.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SlotKey {
    ip: u32,
    port: u16,
    slot: u16,
}

/// A value of the map: an endpoint (network byte order) in slots 1 to n, the count in 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SlotValue {
    ip: u32,
    port: u16,
    count: u16,
}

/// A Service port's address, and the endpoints a connection to it goes to.
type Frontend = (Ipv4Addr, u16);
type Backends = Vec<(Ipv4Addr, u16)>;

/// The node's connect-time balancing and what its map holds now.
#[derive(Debug)]
pub struct ConnectBalancer {
    slots: Map,
    _links: [OwnedFd; 2],
    applied: BTreeMap<Frontend, Backends>,
}

impl ConnectBalancer {
    /// Starts balancing the connections of the processes under the cgroup `pods` (a
    /// path in the cgroup v2 tree, made if missing) and of every process in the calling
    /// thread's network namespace; nothing is balanced until [`Self::sync`].
    pub fn attach(pods: &str) -> Result<Self> {
        let root = cgroup2_root()?;
        let pods = root.join(pods.trim_start_matches('/'));
        std::fs::create_dir_all(&pods).or_os(|| format!("create the cgroup {}", pods.display()))?;
        let slots = Map::hash::<SlotKey, SlotValue>(CAPACITY)?;
        let load =
            |name, netns| Program::load(name, (SOCK_ADDR, INET4_CONNECT), &program(&slots, netns));
        let links = [
            load(c"berth_pods_lb", None)?.link_to_cgroup(&open(&pods)?, INET4_CONNECT)?,
            load(c"berth_node_lb", Some(netns_cookie()?))?
                .link_to_cgroup(&open(&root)?, INET4_CONNECT)?,
        ];
        Ok(Self {
            slots,
            _links: links,
            applied: BTreeMap::new(),
        })
    }

    /// Balances exactly the TCP cluster IPs without affinity among `routes`, writing
    /// only the Service ports whose endpoints changed. How many did.
    pub fn sync(&mut self, routes: &BTreeMap<String, ServiceRoute>) -> Result<usize> {
        let wanted = balanced(routes);
        let mut changed = 0;
        let gone: Vec<(Frontend, usize)> = (self.applied.iter())
            .filter(|(frontend, _)| !wanted.contains_key(frontend))
            .map(|(frontend, old)| (*frontend, old.len()))
            .collect();
        for (frontend, count) in gone {
            self.withdraw(frontend, count)?;
            changed += 1;
        }
        for (frontend, backends) in &wanted {
            let old = self.applied.get(frontend).map_or(0, Vec::len);
            if self.applied.get(frontend) != Some(backends) {
                // Forgotten until written whole, so a write that fails halfway is done
                // again by the next sync. Meanwhile the kernel's map keeps the old count
                // until slot 0 is rewritten, so connections pick old or new endpoints.
                self.applied.remove(frontend);
                self.write(*frontend, backends, old)?;
                self.applied.insert(*frontend, backends.clone());
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Writes the endpoints first and their count last, so a connection never picks an
    /// empty slot; then drops the slots beyond the new count.
    fn write(&self, frontend: Frontend, backends: &[(Ipv4Addr, u16)], old: usize) -> Result<()> {
        for (slot, (ip, port)) in (1u16..).zip(backends) {
            let value = SlotValue {
                ip: u32::from_ne_bytes(ip.octets()),
                port: port.to_be(),
                count: 0,
            };
            self.slots.insert(&key(frontend, slot), &value)?;
        }
        let count = SlotValue {
            count: backends.len() as u16,
            ..SlotValue::default()
        };
        self.slots.insert(&key(frontend, 0), &count)?;
        for slot in backends.len() + 1..=old {
            self.slots.remove(&key(frontend, slot as u16))?;
        }
        Ok(())
    }

    /// Takes the count out first, so no connection picks a slot as it goes.
    fn withdraw(&mut self, frontend: Frontend, count: usize) -> Result<()> {
        self.slots.remove(&key(frontend, 0))?;
        self.applied.remove(&frontend);
        for slot in 1..=count {
            self.slots.remove(&key(frontend, slot as u16))?;
        }
        Ok(())
    }
}

fn key((ip, port): Frontend, slot: u16) -> SlotKey {
    SlotKey {
        ip: u32::from_ne_bytes(ip.octets()),
        port: port.to_be(),
        slot,
    }
}

/// The frontends connections to which are balanced here, each with the endpoints its
/// nftables chain would pick among for traffic from inside the cluster.
fn balanced(routes: &BTreeMap<String, ServiceRoute>) -> BTreeMap<Frontend, Backends> {
    routes
        .values()
        .filter(|route| route.protocol == Protocol::Tcp && route.affinity.is_none())
        .filter_map(|route| {
            let mut backends: Backends = route
                .endpoints
                .iter()
                .filter(|e| e.local || !route.internal_local)
                .map(|e| (e.ip, e.port))
                .collect();
            backends.sort_unstable();
            // A loopback endpoint (an API server on 127.0.0.1) is the node's: reached
            // from a pod only through the rules' DNAT on the node, never by the pod's
            // own socket.
            let on_loopback = backends.iter().any(|(ip, _)| ip.is_loopback());
            let fits = !backends.is_empty() && backends.len() <= usize::from(u16::MAX);
            (fits && !on_loopback).then_some(((route.cluster_ip, route.port), backends))
        })
        .collect()
}

/// The `connect4` program: for a TCP connect (from the network namespace `only_netns`,
/// when given) to an address the map balances, a random one of its endpoints replaces
/// the address. It always lets the connect go on.
fn program(slots: &Map, only_netns: Option<u64>) -> Vec<Insn> {
    let (ctx, count) = (Reg(6), Reg(7));
    let (r0, r1, r2) = (Reg(0), Reg(1), Reg(2));
    let mut code = vec![
        Insn::mov(ctx, r1),
        Insn::load(Size::Word, r0, ctx, PROTOCOL),
        Insn::jump_ne_imm(r0, libc::IPPROTO_TCP, 0),
    ];
    if let Some(cookie) = only_netns {
        code.extend([Insn::mov(r1, ctx), Insn::call(Helper::NetnsCookie)]);
        code.extend(Insn::load_u64(r1, cookie));
        code.push(Insn::jump_ne(r0, r1, 0));
    }
    // The key (address, port, slot 0) on the stack.
    code.extend([
        Insn::load(Size::Word, count, ctx, USER_IP4),
        Insn::store(Size::Word, FP, -8, count),
        Insn::load(Size::Word, count, ctx, USER_PORT),
        Insn::store(Size::Half, FP, -4, count),
        Insn::store_imm(Size::Half, FP, -2, 0),
    ]);
    let lookup = |code: &mut Vec<Insn>| {
        code.extend(Insn::load_map(r1, slots));
        code.extend([
            Insn::mov(r2, FP),
            Insn::add_imm(r2, -8),
            Insn::call(Helper::MapLookup),
            Insn::jump_eq_imm(r0, 0, 0),
        ]);
    };
    lookup(&mut code);
    code.extend([
        Insn::load(Size::Half, count, r0, 6),
        Insn::jump_eq_imm(count, 0, 0),
        Insn::call(Helper::RandomU32),
        Insn::mod32(r0, count),
        Insn::add_imm(r0, 1),
        Insn::store(Size::Half, FP, -2, r0),
    ]);
    lookup(&mut code);
    code.extend([
        Insn::load(Size::Word, r1, r0, 0),
        Insn::store(Size::Word, ctx, USER_IP4, r1),
        Insn::load(Size::Half, r1, r0, 4),
        Insn::store(Size::Word, ctx, USER_PORT, r1),
    ]);
    // Every jump above leads here: let the connect go on.
    let allow = code.len();
    for (at, insn) in code.iter_mut().enumerate() {
        insn.retarget_forward(allow - at - 1);
    }
    code.extend([Insn::mov_imm(r0, 1), Insn::exit()]);
    code
}

/// Where the cgroup v2 tree is mounted: /sys/fs/cgroup itself on a v2 host, beside the
/// v1 hierarchies (/sys/fs/cgroup/unified) on a hybrid one. BPF programs link only there.
pub fn cgroup2_root() -> Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .or_os(|| "read /proc/self/mountinfo".into())?;
    info.lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            right
                .starts_with("cgroup2 ")
                .then(|| PathBuf::from(mount_point))
        })
        .ok_or_else(|| Error::Invalid("no cgroup v2 tree is mounted".into()))
}

fn open(cgroup: &Path) -> Result<std::fs::File> {
    std::fs::File::open(cgroup).or_os(|| format!("open the cgroup {}", cgroup.display()))
}

/// The cookie of the calling thread's network namespace, which the program compares
/// with its socket's.
fn netns_cookie() -> Result<u64> {
    const SO_NETNS_COOKIE: libc::c_int = 71;
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .or_os(|| "open a socket to read the network namespace's cookie".into())?;
    let mut cookie = 0u64;
    let mut length = size_of::<u64>() as libc::socklen_t;
    // SAFETY: the buffer is a live u64 and its length is passed with it.
    let answer = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            std::ptr::from_mut(&mut cookie).cast(),
            &mut length,
        )
    };
    if answer != 0 {
        return Err(std::io::Error::last_os_error())
            .or_os(|| "read the network namespace's cookie".into());
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;

    fn route(cluster_ip: [u8; 4], endpoints: &[([u8; 4], bool)]) -> ServiceRoute {
        ServiceRoute {
            cluster_ip: cluster_ip.into(),
            port: 80,
            protocol: Protocol::Tcp,
            node_ports: vec![],
            endpoints: endpoints
                .iter()
                .map(|&(ip, local)| Endpoint {
                    ip: ip.into(),
                    port: 8080,
                    local,
                })
                .collect(),
            affinity: None,
            internal_local: false,
            external_local: false,
        }
    }

    #[test]
    fn only_tcp_cluster_ips_without_affinity_and_with_pod_endpoints_are_balanced() {
        let pods = [([10, 42, 0, 3], true), ([10, 42, 1, 3], false)];
        let plain = route([10, 43, 0, 5], &pods);
        let udp = ServiceRoute {
            protocol: Protocol::Udp,
            ..route([10, 43, 0, 6], &pods)
        };
        let sticky = ServiceRoute {
            affinity: Some(10800),
            ..route([10, 43, 0, 7], &pods)
        };
        let local_only = ServiceRoute {
            internal_local: true,
            ..route([10, 43, 0, 8], &pods)
        };
        let api_server = route([10, 43, 0, 1], &[([127, 0, 0, 1], true)]);
        let empty = route([10, 43, 0, 9], &[]);
        let routes = [plain, udp, sticky, local_only, api_server, empty]
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i.to_string(), r))
            .collect();
        let pod = |ip: [u8; 4]| (Ipv4Addr::from(ip), 8080);
        assert_eq!(
            balanced(&routes),
            BTreeMap::from([
                (
                    (Ipv4Addr::new(10, 43, 0, 5), 80),
                    vec![pod([10, 42, 0, 3]), pod([10, 42, 1, 3])]
                ),
                ((Ipv4Addr::new(10, 43, 0, 8), 80), vec![pod([10, 42, 0, 3])]),
            ])
        );
    }
}
