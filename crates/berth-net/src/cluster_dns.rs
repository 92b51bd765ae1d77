//! The cluster's names, as Kubernetes' DNS specification lays them out under the
//! cluster domain (`cluster.local`): a Service's `name.namespace.svc` answers its cluster
//! IP — a headless one its ready endpoints' addresses, an ExternalName one a CNAME — with
//! SRV records for its named ports; a pod's dashed address under `namespace.pod` answers
//! that address. A name under the domain that is none of these is NXDOMAIN at once;
//! every other question goes to the node's resolvers.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::dns::{Answers, asked_name, reply_to};

/// How long answers may be cached: CoreDNS's kubernetes plugin's default.
const TTL: u32 = 5;

/// One Service as its names answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNames {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What its name answers.
    pub target: NameTarget,
    /// Its named ports: (name, `tcp` or `udp`, port), for SRV records.
    pub ports: Vec<(String, String, u16)>,
}

/// What a Service's name answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameTarget {
    /// Its cluster IP.
    ClusterIp(Ipv4Addr),
    /// Its ready endpoints' addresses (a headless Service).
    Endpoints(Vec<Ipv4Addr>),
    /// Another name (an ExternalName Service).
    Alias(String),
}

/// The records of the cluster domain, replaced whole as Services change; shared with
/// the DNS server, which answers from them.
#[derive(Debug, Clone)]
pub struct ClusterZone {
    domain: String,
    records: Arc<RwLock<Records>>,
}

#[derive(Debug, Default)]
struct Records {
    addresses: HashMap<String, Vec<Ipv4Addr>>,
    aliases: HashMap<String, String>,
    services: HashMap<String, Vec<(u16, String)>>,
}

impl ClusterZone {
    /// An empty zone for `domain` (`cluster.local`).
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            records: Arc::default(),
        }
    }

    /// Makes the zone hold exactly the names of `services`.
    pub fn set(&self, services: &[ServiceNames]) {
        let mut records = Records::default();
        for service in services {
            let name = format!("{}.{}.svc.{}", service.name, service.namespace, self.domain)
                .to_ascii_lowercase();
            match &service.target {
                NameTarget::ClusterIp(ip) => {
                    records.addresses.insert(name.clone(), vec![*ip]);
                }
                NameTarget::Endpoints(ips) => {
                    records.addresses.insert(name.clone(), ips.clone());
                }
                NameTarget::Alias(target) => {
                    records.aliases.insert(name.clone(), target.clone());
                }
            }
            for (port, protocol, number) in &service.ports {
                let srv = format!("_{port}._{protocol}.{name}").to_ascii_lowercase();
                records
                    .services
                    .insert(srv, vec![(*number, format!("{name}."))]);
            }
        }
        *self
            .records
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = records;
    }

    /// A pod's address from its name under `namespace.pod.<domain>` (`10-42-0-5`), as
    /// CoreDNS's `pods insecure` answers it.
    fn pod_address(&self, name: &str) -> Option<Ipv4Addr> {
        let rest = name.strip_suffix(&format!(".pod.{}", self.domain))?;
        let (dashed, _namespace) = rest.split_once('.')?;
        dashed.replace('-', ".").parse().ok()
    }
}

impl Answers for ClusterZone {
    fn answer(&self, question: &Message, _client: Ipv4Addr) -> Option<Message> {
        let query = question.queries.first()?;
        let name = asked_name(query);
        if name != self.domain && !name.ends_with(&format!(".{}", self.domain)) {
            return None;
        }
        let mut reply = reply_to(question, query);
        let owner = query.name().clone();
        let kind = query.query_type();
        let wants = |t: RecordType| kind == t || kind == RecordType::ANY;
        let records = self
            .records
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let addresses = records
            .addresses
            .get(&name)
            .cloned()
            .or_else(|| self.pod_address(&name).map(|ip| vec![ip]));
        if let Some(addresses) = addresses {
            if wants(RecordType::A) {
                for ip in addresses {
                    reply.add_answer(Record::from_rdata(owner.clone(), TTL, RData::A(A(ip))));
                }
            }
        } else if let Some(target) = records.aliases.get(&name) {
            let target = Name::from_ascii(format!("{}.", target.trim_end_matches('.'))).ok()?;
            reply.add_answer(Record::from_rdata(owner, TTL, RData::CNAME(CNAME(target))));
        } else if let Some(services) = records.services.get(&name) {
            if wants(RecordType::SRV) {
                for (port, target) in services {
                    let target = Name::from_ascii(target).ok()?;
                    let srv = SRV::new(0, 100, *port, target);
                    reply.add_answer(Record::from_rdata(owner.clone(), TTL, RData::SRV(srv)));
                }
            }
        } else if !is_branch(&records, &name) {
            reply.metadata.response_code = ResponseCode::NXDomain;
        }
        Some(reply)
    }
}

/// Whether `name` has names below it (`svc.cluster.local`, a namespace's `ns.svc…`): it
/// exists, with no records of its own.
fn is_branch(records: &Records, name: &str) -> bool {
    let below = format!(".{name}");
    records
        .addresses
        .keys()
        .chain(records.aliases.keys())
        .chain(records.services.keys())
        .any(|known| known.ends_with(&below))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};

    fn ask(zone: &ClusterZone, name: &str, kind: RecordType) -> Option<Message> {
        let mut message = Message::new(9, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        zone.answer(&message, Ipv4Addr::UNSPECIFIED)
    }

    fn zone() -> ClusterZone {
        let zone = ClusterZone::new("cluster.local");
        zone.set(&[
            ServiceNames {
                namespace: "shop".into(),
                name: "web".into(),
                target: NameTarget::ClusterIp(Ipv4Addr::new(10, 43, 0, 20)),
                ports: vec![("http".into(), "tcp".into(), 80)],
            },
            ServiceNames {
                namespace: "shop".into(),
                name: "db".into(),
                target: NameTarget::Endpoints(vec![
                    Ipv4Addr::new(10, 42, 0, 5),
                    Ipv4Addr::new(10, 42, 0, 6),
                ]),
                ports: vec![],
            },
            ServiceNames {
                namespace: "shop".into(),
                name: "mail".into(),
                target: NameTarget::Alias("mail.example.com".into()),
                ports: vec![],
            },
        ]);
        zone
    }

    fn answers(reply: &Message) -> Vec<RData> {
        reply.answers.iter().map(|r| r.data.clone()).collect()
    }

    #[test]
    fn services_answer_their_cluster_ip_endpoints_or_alias() {
        let zone = zone();
        let web = ask(&zone, "web.shop.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(answers(&web), [RData::A(A(Ipv4Addr::new(10, 43, 0, 20)))]);
        let db = ask(&zone, "DB.shop.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(answers(&db).len(), 2);
        let mail = ask(&zone, "mail.shop.svc.cluster.local.", RecordType::A).unwrap();
        let target = Name::from_ascii("mail.example.com.").unwrap();
        assert_eq!(answers(&mail), [RData::CNAME(CNAME(target))]);
        let srv = ask(
            &zone,
            "_http._tcp.web.shop.svc.cluster.local.",
            RecordType::SRV,
        )
        .unwrap();
        let RData::SRV(srv) = &answers(&srv)[0] else {
            panic!("not an SRV record");
        };
        assert_eq!(srv.port, 80);
        assert_eq!(srv.target.to_ascii(), "web.shop.svc.cluster.local.");
    }

    #[test]
    fn unknown_names_in_the_domain_are_nxdomain_and_others_are_forwarded() {
        let zone = zone();
        let missing = ask(&zone, "nope.shop.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
        // A search path's step: "web.shop.svc.cluster.local.shop.svc.cluster.local".
        let doubled = "web.shop.svc.cluster.local.shop.svc.cluster.local.";
        let searched = ask(&zone, doubled, RecordType::A).unwrap();
        assert_eq!(searched.metadata.response_code, ResponseCode::NXDomain);
        let namespace = ask(&zone, "shop.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(namespace.metadata.response_code, ResponseCode::NoError);
        assert!(namespace.answers.is_empty());
        let aaaa = ask(&zone, "web.shop.svc.cluster.local.", RecordType::AAAA).unwrap();
        assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
        assert!(aaaa.answers.is_empty());
        assert!(ask(&zone, "example.com.", RecordType::A).is_none());
    }

    #[test]
    fn pods_answer_their_dashed_address() {
        let zone = zone();
        let pod = ask(&zone, "10-42-0-7.shop.pod.cluster.local.", RecordType::A).unwrap();
        assert_eq!(answers(&pod), [RData::A(A(Ipv4Addr::new(10, 42, 0, 7)))]);
    }
}
