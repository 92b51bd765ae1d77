//! The networking.k8s.io kinds' schemas — Ingress, IngressClass, NetworkPolicy — defaulted
//! and checked as kube-apiserver's validation does. The API serves them as Kubernetes
//! does, whatever enforces them: the cluster network (issue 16) routes Ingresses and
//! enforces NetworkPolicies.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, IPBlock, Ingress, IngressClass, NetworkPolicy, NetworkPolicyPort,
};

use crate::kinds::{Schema, required, unsupported};

/// The cluster's default IngressClass, `berth`, which every node's built-in Ingress
/// controller serves (as k3s makes `traefik` the default).
pub(crate) fn default_ingress_class() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "berth",
                     "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "berth.dev/ingress-controller"},
    })
}

/// The path types an Ingress path may have.
const PATH_TYPES: [&str; 3] = ["Exact", "ImplementationSpecific", "Prefix"];

impl Schema for Ingress {
    const HAS_STATUS: bool = true;

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let spec = self.spec.clone().unwrap_or_default();
        let rules = spec.rules.unwrap_or_default();
        if spec.default_backend.is_none() && rules.is_empty() {
            problems.push(
                "spec: Invalid value: \"null\": either `defaultBackend` or `rules` must be specified"
                    .to_string(),
            );
        }
        for (i, rule) in rules.iter().enumerate() {
            let paths = rule
                .http
                .as_ref()
                .map(|h| h.paths.as_slice())
                .unwrap_or_default();
            for (j, path) in paths.iter().enumerate() {
                let field = format!("spec.rules[{i}].http.paths[{j}]");
                problems.extend(path_problems(&field, path));
            }
        }
        problems
    }
}

/// An ipBlock's problems, in kube-apiserver's words: a CIDR that is not one, an
/// exception that is not strictly inside it.
fn block_problems(field: &str, block: &IPBlock) -> Vec<String> {
    let invalid = |field: String, value: &str| {
        format!(
            "{field}: Invalid value: {value:?}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        )
    };
    let Ok(cidr) = block.cidr.parse::<ipnet::IpNet>() else {
        return vec![invalid(format!("{field}.cidr"), &block.cidr)];
    };
    let mut problems = Vec::new();
    for (k, except) in block.except.iter().flatten().enumerate() {
        let field = format!("{field}.except[{k}]");
        match except.parse::<ipnet::IpNet>() {
            Err(_) => problems.push(invalid(field, except)),
            Ok(inner) if !(cidr.contains(&inner) && inner != cidr) => problems.push(format!(
                "{field}: Invalid value: {except:?}: must be a strict subset of `cidr`"
            )),
            Ok(_) => {}
        }
    }
    problems
}

/// An Ingress path's problems: its type, and an absolute path for the types that match
/// by path.
fn path_problems(field: &str, path: &HTTPIngressPath) -> Vec<String> {
    let mut problems = Vec::new();
    match path.path_type.as_str() {
        "" => problems.push(format!(
            "{field}.pathType: Required value: pathType must be specified"
        )),
        kind if !PATH_TYPES.contains(&kind) => {
            problems.push(unsupported(&format!("{field}.pathType"), kind, &PATH_TYPES));
        }
        "Exact" | "Prefix" => {
            let given = path.path.as_deref().unwrap_or_default();
            if !given.starts_with('/') {
                problems.push(format!(
                    "{field}.path: Invalid value: {given:?}: must be an absolute path"
                ));
            }
        }
        _ => {}
    }
    let backend = &path.backend;
    if backend.service.is_none() && backend.resource.is_none() {
        problems.push(format!(
            "{field}.backend: Invalid value: \"\": one backend (`service` or `resource`) must be specified"
        ));
    }
    problems
}

impl Schema for IngressClass {
    fn problems(&self) -> Vec<String> {
        let controller = self.spec.as_ref().and_then(|s| s.controller.as_deref());
        match controller {
            None | Some("") => vec![required("spec.controller")],
            Some(_) => Vec::new(),
        }
    }
}

impl Schema for NetworkPolicy {
    /// As kube-apiserver's defaults: a policy without types is an Ingress policy, and an
    /// Egress one too when it has egress rules; ports are TCP unless they say.
    fn default_fields(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
            let mut types = vec!["Ingress".to_string()];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                types.push("Egress".into());
            }
            spec.policy_types = Some(types);
        }
        let ingress_ports = spec
            .ingress
            .iter_mut()
            .flatten()
            .flat_map(|r| r.ports.iter_mut().flatten());
        let egress_ports = spec
            .egress
            .iter_mut()
            .flatten()
            .flat_map(|r| r.ports.iter_mut().flatten());
        for port in ingress_ports.chain(egress_ports) {
            default_protocol(port);
        }
    }

    fn problems(&self) -> Vec<String> {
        let types = self
            .spec
            .as_ref()
            .and_then(|s| s.policy_types.as_deref())
            .unwrap_or_default();
        let mut problems: Vec<String> = types
            .iter()
            .enumerate()
            .filter(|(_, t)| !matches!(t.as_str(), "Ingress" | "Egress"))
            .map(|(i, t)| unsupported(&format!("spec.policyTypes[{i}]"), t, &["Ingress", "Egress"]))
            .collect();
        let spec = self.spec.clone().unwrap_or_default();
        let ingress = spec.ingress.iter().flatten().enumerate().map(|(i, rule)| {
            (
                format!("spec.ingress[{i}].from"),
                rule.from.clone().unwrap_or_default(),
            )
        });
        let egress = spec.egress.iter().flatten().enumerate().map(|(i, rule)| {
            (
                format!("spec.egress[{i}].to"),
                rule.to.clone().unwrap_or_default(),
            )
        });
        for (field, peers) in ingress.chain(egress) {
            for (j, peer) in peers.iter().enumerate() {
                if let Some(block) = &peer.ip_block {
                    problems.extend(block_problems(&format!("{field}[{j}].ipBlock"), block));
                }
            }
        }
        problems
    }
}

fn default_protocol(port: &mut NetworkPolicyPort) {
    if port.protocol.is_none() {
        port.protocol = Some("TCP".into());
    }
}
