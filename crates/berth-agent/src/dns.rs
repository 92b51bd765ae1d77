//! A pod's /etc/resolv.conf, as the kubelet writes it for its dnsPolicy: ClusterFirst
//! asks the cluster DNS with the namespace's search path and `ndots:5`, Default keeps
//! the node's, None only what dnsConfig says; dnsConfig's nameservers, searches and
//! options are added to any of them.

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};
use kube::ResourceExt;

use crate::ClusterDns;
use crate::spec::Refusal;

/// The lines a resolv.conf is made of.
#[derive(Debug, Default, PartialEq, Eq)]
struct Resolver {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

impl Resolver {
    /// What `text` (a resolv.conf) says.
    fn parse(text: &str) -> Self {
        let mut resolver = Self::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let list = match words.next() {
                Some("nameserver") => &mut resolver.nameservers,
                Some("search") => &mut resolver.searches,
                Some("options") => &mut resolver.options,
                _ => continue,
            };
            list.extend(words.map(str::to_string));
        }
        resolver
    }

    /// dnsConfig's additions: nameservers and searches after these (each once), options
    /// replacing those of the same name.
    fn extend(&mut self, config: &PodDNSConfig) {
        for server in config.nameservers.iter().flatten() {
            if !self.nameservers.contains(server) {
                self.nameservers.push(server.clone());
            }
        }
        for search in config.searches.iter().flatten() {
            if !self.searches.contains(search) {
                self.searches.push(search.clone());
            }
        }
        for option in config.options.iter().flatten() {
            let name = option.name.clone().unwrap_or_default();
            self.options
                .retain(|o| o.split(':').next() != Some(name.as_str()));
            self.options.push(match &option.value {
                Some(value) => format!("{name}:{value}"),
                None => name,
            });
        }
    }

    fn text(&self) -> String {
        let mut text = String::new();
        if !self.searches.is_empty() {
            text.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.nameservers {
            text.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            text.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        text
    }
}

/// The resolv.conf of `pod` given the node's (`host`), or None to keep the one its
/// network gives (the node's, for dnsPolicy Default without dnsConfig).
pub(crate) fn resolv_conf(
    pod: &Pod,
    dns: &ClusterDns,
    host: &str,
) -> Result<Option<String>, Refusal> {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let config = spec.dns_config.as_ref();
    let mut resolver = match policy {
        "ClusterFirst" if host_network => Resolver::parse(host),
        "ClusterFirst" | "ClusterFirstWithHostNet" => {
            let namespace = pod.namespace().unwrap_or_default();
            let domain = &dns.domain;
            let mut searches = vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.clone(),
            ];
            searches.extend(Resolver::parse(host).searches);
            Resolver {
                nameservers: vec![dns.address.to_string()],
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        "Default" if config.is_none() => return Ok(None),
        "Default" => Resolver::parse(host),
        "None" => {
            if config.is_none_or(|c| c.nameservers.as_ref().is_none_or(Vec::is_empty)) {
                return Err(Refusal::Invalid(
                    "dnsPolicy None needs dnsConfig with at least one nameserver".into(),
                ));
            }
            Resolver::default()
        }
        other => {
            return Err(Refusal::Invalid(format!(
                "dnsPolicy {other:?} is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None"
            )));
        }
    };
    if let Some(config) = config {
        resolver.extend(config);
    }
    Ok(Some(resolver.text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";

    fn dns() -> ClusterDns {
        ClusterDns {
            address: std::net::Ipv4Addr::new(10, 43, 0, 10),
            domain: "cluster.local".into(),
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn cluster_first_asks_the_cluster_dns_with_the_namespace_s_search_path() {
        let text = resolv_conf(&pod(serde_json::json!({"containers": []})), &dns(), HOST);
        assert_eq!(
            text.unwrap().unwrap(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
        // A host-network pod keeps the node's unless it asks otherwise.
        let host = pod(serde_json::json!({"containers": [], "hostNetwork": true}));
        assert_eq!(
            resolv_conf(&host, &dns(), HOST).unwrap().unwrap(),
            "search corp.example\nnameserver 192.0.2.53\noptions edns0\n"
        );
        let asks = pod(serde_json::json!({"containers": [], "hostNetwork": true,
                                          "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert!(
            resolv_conf(&asks, &dns(), HOST)
                .unwrap()
                .unwrap()
                .contains("nameserver 10.43.0.10\n")
        );
    }

    #[test]
    fn dns_config_adds_to_the_policy_and_none_takes_only_it() {
        let config = serde_json::json!({"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                                        "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]});
        let none =
            pod(serde_json::json!({"containers": [], "dnsPolicy": "None", "dnsConfig": config}));
        assert_eq!(
            resolv_conf(&none, &dns(), HOST).unwrap().unwrap(),
            "search a.example\nnameserver 1.1.1.1\noptions ndots:2 rotate\n"
        );
        let first = pod(serde_json::json!({"containers": [], "dnsConfig": config}));
        let text = resolv_conf(&first, &dns(), HOST).unwrap().unwrap();
        assert!(
            text.contains("nameserver 10.43.0.10\nnameserver 1.1.1.1\n"),
            "{text}"
        );
        assert!(text.ends_with("options ndots:2 rotate\n"), "{text}");
        let default = pod(serde_json::json!({"containers": [], "dnsPolicy": "Default"}));
        assert_eq!(resolv_conf(&default, &dns(), HOST).unwrap(), None);
        let empty = pod(serde_json::json!({"containers": [], "dnsPolicy": "None"}));
        assert!(resolv_conf(&empty, &dns(), HOST).is_err());
    }
}
