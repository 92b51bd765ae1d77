//! Host names to IPv4 addresses without glibc's resolver: a static glibc cannot load the
//! NSS modules `getaddrinfo` needs, and the images hold nothing but busybox. So this reads
//! /etc/hosts, then asks the name servers of /etc/resolv.conf (an A query over UDP), as
//! the name itself and then with each search domain.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

/// The IPv4 address of `host`: a literal, an /etc/hosts entry, or a DNS answer.
pub fn resolve(host: &str) -> Result<Ipv4Addr, String> {
    if let Ok(address) = host.parse() {
        return Ok(address);
    }
    if let Some(address) = from_hosts(host) {
        return Ok(address);
    }
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers: Vec<Ipv4Addr> = setting(&resolv, "nameserver")
        .filter_map(|s| s.parse().ok())
        .collect();
    let names = std::iter::once(host.to_string())
        .chain(setting(&resolv, "search").map(|domain| format!("{host}.{domain}")));
    for name in names {
        for server in &servers {
            if let Some(address) = query(*server, &name) {
                return Ok(address);
            }
        }
    }
    Err(format!("cannot resolve {host}: no /etc/hosts entry and no DNS answer from {servers:?}"))
}

/// The words after `key` on the lines of resolv.conf that start with it.
fn setting<'a>(resolv: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
    resolv
        .lines()
        .filter_map(move |line| line.strip_prefix(key))
        .flat_map(str::split_whitespace)
}

fn from_hosts(host: &str) -> Option<Ipv4Addr> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|line| {
        let mut words = line.split('#').next()?.split_whitespace();
        let address = words.next()?.parse().ok()?;
        words.any(|name| name == host).then_some(address)
    })
}

/// One A query for `name` to `server`; None on any failure or an empty answer.
fn query(server: Ipv4Addr, name: &str) -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    // Header: id, flags (recursion desired), one question, no other records.
    let mut packet = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        packet.push(u8::try_from(label.len()).ok()?);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    socket.send_to(&packet, (server, 53)).ok()?;
    let mut answer = [0u8; 1500];
    let length = socket.recv(&mut answer).ok()?;
    first_a_record(&answer[..length])
}

fn first_a_record(message: &[u8]) -> Option<Ipv4Addr> {
    let word = |at: usize| Some(u16::from_be_bytes([*message.get(at)?, *message.get(at + 1)?]));
    if word(0)? != 0x4242 || word(2)? & 0x000f != 0 {
        return None;
    }
    let answers = word(6)?;
    let mut at = skip_name(message, 12)? + 4; // the question's name, type and class
    for _ in 0..answers {
        at = skip_name(message, at)?;
        let (kind, length) = (word(at)?, usize::from(word(at + 8)?));
        let data = message.get(at + 10..at + 10 + length)?;
        if kind == 1 && length == 4 {
            return Some(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + length;
    }
    None
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *message.get(at)?;
        match length {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}
