//! The files the engine writes for a container's /etc: hosts (with `--add-host`) and
//! resolv.conf (with `--dns`, `--dns-search` and `--dns-option` over the network's).

use std::net::IpAddr;

use crate::model::HostConfig;
use crate::{Error, Result};

/// The address `--add-host NAME:host-gateway` stands for.
const HOST_GATEWAY: &str = "host-gateway";

/// One `--add-host NAME:IP` as (name, address); `host-gateway` becomes `gateway`.
fn extra_host(entry: &str, gateway: Option<IpAddr>) -> Result<(String, IpAddr)> {
    let (name, address) = entry
        .split_once([':', '='])
        .ok_or_else(|| Error::Invalid(format!("bad format for add-host: {entry:?}")))?;
    let address = match address.trim_matches(['[', ']']) {
        HOST_GATEWAY => gateway.ok_or_else(|| {
            Error::Invalid(format!(
                "--add-host {entry}: host-gateway has no address: the default bridge has none"
            ))
        })?,
        text => text
            .parse()
            .map_err(|_| Error::Invalid(format!("invalid IP address in add-host: {text:?}")))?,
    };
    if name.is_empty() {
        return Err(Error::Invalid(format!(
            "bad format for add-host: {entry:?}"
        )));
    }
    Ok((name.to_string(), address))
}

/// Checks `--add-host` and `--dns` at create; `host-gateway` is checked when the
/// container's network is known.
pub(crate) fn check(host: &HostConfig) -> Result<()> {
    for entry in host.extra_hosts.iter().flatten() {
        if !entry.ends_with(HOST_GATEWAY) {
            extra_host(entry, None)?;
        }
    }
    for server in host.dns.iter().flatten() {
        server
            .parse::<IpAddr>()
            .map_err(|_| Error::Invalid(format!("{server} is not an ip address (--dns)")))?;
    }
    Ok(())
}

/// /etc/hosts: localhost, the container's own name at each of `own_addresses` (one per
/// network it is on, as Docker writes them; 127.0.1.1 on none), and each `--add-host`.
pub(crate) fn hosts(
    host: &HostConfig,
    hostname: &str,
    own_addresses: &[String],
    gateway: Option<IpAddr>,
) -> Result<String> {
    let mut text = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string();
    let fallback = ["127.0.1.1".to_string()];
    let addresses = if own_addresses.is_empty() {
        &fallback[..]
    } else {
        own_addresses
    };
    for address in addresses {
        text.push_str(&format!("{address}\t{hostname}\n"));
    }
    for entry in host.extra_hosts.iter().flatten() {
        let (name, address) = extra_host(entry, gateway)?;
        text.push_str(&format!("{address}\t{name}\n"));
    }
    Ok(text)
}

/// /etc/resolv.conf: the network's (`base`) with its nameservers, search domains and
/// options each replaced by the request's when it sets them, as Docker does.
pub(crate) fn resolv_conf(host: &HostConfig, base: &str) -> String {
    let set = |list: &Option<Vec<String>>| list.as_ref().filter(|l| !l.is_empty()).cloned();
    let servers = set(&host.dns);
    let search = set(&host.dns_search);
    let options = set(&host.dns_options);
    let replaced = |line: &str| {
        let word = line.split_whitespace().next().unwrap_or_default();
        (servers.is_some() && word == "nameserver")
            || (search.is_some() && matches!(word, "search" | "domain"))
            || (options.is_some() && word == "options")
    };
    let mut text: String = base
        .lines()
        .filter(|line| !replaced(line))
        .map(|line| format!("{line}\n"))
        .collect();
    for server in servers.iter().flatten() {
        text.push_str(&format!("nameserver {server}\n"));
    }
    // `--dns-search .` asks for no search domains at all.
    if let Some(search) = search.filter(|s| s.iter().any(|d| d != ".")) {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    if let Some(options) = options {
        text.push_str(&format!("options {}\n", options.join(" ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(dns: &[&str], search: &[&str], options: &[&str]) -> HostConfig {
        let list = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        HostConfig {
            dns: list(dns),
            dns_search: list(search),
            dns_options: list(options),
            extra_hosts: Some(vec!["foo:1.2.3.4".into(), "gw:host-gateway".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn resolv_conf_replaces_only_what_is_set() {
        let base = "nameserver 10.0.0.1\nsearch lan\noptions ndots:0\n";
        assert_eq!(
            resolv_conf(&host(&["9.9.9.9"], &[], &[]), base),
            "search lan\noptions ndots:0\nnameserver 9.9.9.9\n"
        );
        assert_eq!(
            resolv_conf(&host(&[], &["a.com", "b.com"], &["ndots:2"]), base),
            "nameserver 10.0.0.1\nsearch a.com b.com\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(&host(&[], &["."], &[]), base),
            "nameserver 10.0.0.1\noptions ndots:0\n"
        );
    }

    #[test]
    fn extra_hosts_follow_the_container_s_own_line() {
        let gateway = Some("172.17.0.1".parse().unwrap());
        let text = hosts(&host(&[], &[], &[]), "box", &["172.17.0.2".into()], gateway).unwrap();
        assert!(
            text.ends_with("172.17.0.2\tbox\n1.2.3.4\tfoo\n172.17.0.1\tgw\n"),
            "{text}"
        );
        assert!(hosts(&host(&[], &[], &[]), "box", &[], None).is_err());
        let bad = HostConfig {
            extra_hosts: Some(vec!["foo:not-an-ip".into()]),
            ..Default::default()
        };
        assert!(check(&bad).is_err());
    }
}
