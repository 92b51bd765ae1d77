//! The built-in Ingress controller, as k3s ships one: every node answers HTTP on port 80,
//! and HTTPS on 443 with the certificates of the Ingresses' TLS Secrets ([`tls`]), for
//! the Ingresses of class `berth` (the cluster's default class), routing by host and
//! path as the Ingress specification says — an exact host before a wildcard before
//! none, the longest path first, Exact before Prefix — to the backend Service's cluster
//! IP, which the node's Service rules balance over its ready pods. Routes are read from
//! the watched Ingresses and Services on each request, so a change is in force at once.
//! A request no rule matches goes to a default backend, or gets a 404; a backend that
//! is missing a 503. Upgraded connections (WebSockets) are passed through both ways.

mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, Ingress, IngressBackend, IngressClass, IngressServiceBackend,
};
use kube::ResourceExt;
use kube::runtime::reflector::Store;

/// The IngressClass this controller serves, which the server makes the default.
pub const INGRESS_CLASS: &str = "berth";

/// What the proxy reads its routes from.
#[derive(Clone)]
pub(crate) struct Routes {
    pub(crate) ingresses: Store<Ingress>,
    pub(crate) classes: Store<IngressClass>,
    pub(crate) services: Store<Service>,
    client: HttpClient<HttpConnector, Body>,
}

impl Routes {
    pub(crate) fn new(
        ingresses: Store<Ingress>,
        classes: Store<IngressClass>,
        services: Store<Service>,
    ) -> Self {
        let client =
            HttpClient::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new());
        Self {
            ingresses,
            classes,
            services,
            client,
        }
    }

    /// The Ingresses this controller serves now: those of its class.
    fn served(&self) -> Vec<Arc<Ingress>> {
        let classes = self.classes.state();
        self.ingresses
            .state()
            .into_iter()
            .filter(|i| berth_labels::ingress_has_class(i, INGRESS_CLASS, &classes))
            .collect()
    }
}

/// What a listener's requests are handled with: the routes, and the scheme they came
/// in on (for `X-Forwarded-Proto`).
#[derive(Clone)]
struct Front {
    routes: Routes,
    scheme: &'static str,
}

/// Serves HTTP and HTTPS on `ports` of every address of the node until the process
/// ends, following the TLS Secrets of the served Ingresses as `served` says they
/// change; a listener that cannot start (its port taken) is logged and left out.
pub(crate) async fn serve(
    client: kube::Client,
    routes: Routes,
    ports: crate::IngressPorts,
    served: Arc<tokio::sync::Notify>,
) {
    let certificates = tls::Certificates::new(client, routes.clone());
    tokio::spawn(Arc::clone(&certificates).follow(served));
    let app = |scheme| {
        let front = Front {
            routes: routes.clone(),
            scheme,
        };
        axum::Router::new()
            .fallback(proxy)
            .with_state(front)
            .into_make_service_with_connect_info::<SocketAddr>()
    };
    let http = SocketAddr::from((Ipv4Addr::UNSPECIFIED, ports.http));
    let https = SocketAddr::from((Ipv4Addr::UNSPECIFIED, ports.https));
    let plain = async {
        let listener = tokio::net::TcpListener::bind(http).await?;
        axum::serve(listener, app("http")).await
    };
    let secure = async {
        let config = certificates
            .server_config()
            .map_err(std::io::Error::other)?;
        axum_server::bind_rustls(https, config)
            .serve(app("https"))
            .await
    };
    let (plain, secure) = tokio::join!(plain, secure);
    for (address, outcome) in [(http, plain), (https, secure)] {
        if let Err(error) = outcome {
            tracing::error!(%error, %address, "the Ingress listener stopped (or never started)");
        }
    }
}

/// One request, sent on to the backend its host and path route to.
async fn proxy(
    State(Front { routes, scheme }): State<Front>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, _)| name)
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let Some((namespace, backend)) = route(&routes.served(), &host, request.uri().path()) else {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    };
    let Some(target) = resolve(&routes.services.state(), &namespace, &backend) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no available server\n").into_response();
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let Ok(uri) = format!("http://{target}{path}").parse::<Uri>() else {
        return (StatusCode::BAD_REQUEST, "bad request path\n").into_response();
    };
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&client.ip().to_string()) {
        headers.append("x-forwarded-for", value);
    }
    if let Ok(value) = HeaderValue::from_str(&host) {
        headers.insert("x-forwarded-host", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
    let upgrade = request
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut request));
    match routes.client.request(request).await {
        Ok(mut response) => {
            if let Some(client_side) = upgrade
                && response.status() == StatusCode::SWITCHING_PROTOCOLS
            {
                let backend_side = hyper::upgrade::on(&mut response);
                tokio::spawn(pass_through(client_side, backend_side));
            }
            response.map(Body::new)
        }
        Err(error) => {
            tracing::debug!(%error, %target, "an Ingress backend did not answer");
            (StatusCode::BAD_GATEWAY, "bad gateway\n").into_response()
        }
    }
}

/// Copies an upgraded connection's bytes both ways between the client and the backend
/// until either side closes.
async fn pass_through(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    let (Ok(client), Ok(backend)) = tokio::join!(client, backend) else {
        return;
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut backend = hyper_util::rt::TokioIo::new(backend);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(%error, "an upgraded Ingress connection ended");
    }
}

/// How well a rule's host matches the request's: an exact host, a wildcard, or no
/// host at all; None when it does not match.
fn host_match(rule_host: Option<&str>, host: &str) -> Option<u8> {
    match rule_host {
        None | Some("") => Some(0),
        Some(wildcard) if wildcard.starts_with("*.") => {
            let suffix = &wildcard[1..];
            let label = host.strip_suffix(suffix)?;
            (!label.is_empty() && !label.contains('.')).then_some(1)
        }
        Some(exact) => (exact.eq_ignore_ascii_case(host)).then_some(2),
    }
}

/// How well a path rule matches `path`: its length, Exact ranking above Prefix; None
/// when it does not match. ImplementationSpecific paths match as prefixes.
fn path_match(rule: &HTTPIngressPath, path: &str) -> Option<(usize, u8)> {
    let wanted = rule.path.as_deref().unwrap_or("/");
    match rule.path_type.as_str() {
        "Exact" => (wanted == path).then_some((wanted.len(), 1)),
        _ => {
            let wanted = wanted.trim_end_matches('/');
            let matches = wanted.is_empty()
                || path == wanted
                || path
                    .strip_prefix(wanted)
                    .is_some_and(|rest| rest.starts_with('/'));
            matches.then_some((wanted.len(), 0))
        }
    }
}

/// The backend (and its Ingress's namespace) that `host` and `path` route to among
/// `ingresses`: the best matching path of the best matching host, else the oldest
/// default backend.
fn route(
    ingresses: &[Arc<Ingress>],
    host: &str,
    path: &str,
) -> Option<(String, IngressServiceBackend)> {
    let mut best: Option<((u8, usize, u8), String, IngressServiceBackend)> = None;
    for ingress in ingresses {
        let namespace = ingress.namespace().unwrap_or_default();
        let rules = ingress.spec.iter().flat_map(|s| s.rules.iter().flatten());
        for rule in rules {
            let Some(host_rank) = host_match(rule.host.as_deref(), host) else {
                continue;
            };
            for candidate in rule.http.iter().flat_map(|h| &h.paths) {
                let Some((length, kind)) = path_match(candidate, path) else {
                    continue;
                };
                let Some(service) = service_backend(&candidate.backend) else {
                    continue;
                };
                let rank = (host_rank, length, kind);
                if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                    best = Some((rank, namespace.clone(), service));
                }
            }
        }
    }
    if let Some((_, namespace, service)) = best {
        return Some((namespace, service));
    }
    let mut defaults: Vec<&Arc<Ingress>> = ingresses
        .iter()
        .filter(|i| i.spec.as_ref().is_some_and(|s| s.default_backend.is_some()))
        .collect();
    defaults.sort_by_key(|i| i.metadata.creation_timestamp.clone().map(|t| t.0));
    let ingress = defaults.first()?;
    let backend = ingress.spec.as_ref()?.default_backend.as_ref()?;
    Some((
        ingress.namespace().unwrap_or_default(),
        service_backend(backend)?,
    ))
}

fn service_backend(backend: &IngressBackend) -> Option<IngressServiceBackend> {
    backend.service.clone()
}

/// The cluster IP and port of the backend's Service, its port named or numbered.
fn resolve(
    services: &[Arc<Service>],
    namespace: &str,
    backend: &IngressServiceBackend,
) -> Option<SocketAddr> {
    let service = services
        .iter()
        .find(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() == backend.name)?;
    let spec = service.spec.as_ref()?;
    let ip: Ipv4Addr = spec.cluster_ip.as_deref()?.parse().ok()?;
    let wanted = backend.port.as_ref()?;
    let port = spec
        .ports
        .iter()
        .flatten()
        .find(|p| match (&wanted.name, wanted.number) {
            (Some(name), _) if !name.is_empty() => p.name.as_deref() == Some(name.as_str()),
            (_, Some(number)) => p.port == number,
            _ => false,
        })?;
    Some(SocketAddr::from((ip, u16::try_from(port.port).ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(json: serde_json::Value) -> Arc<Ingress> {
        Arc::new(serde_json::from_value(json).unwrap())
    }

    fn two_hosts() -> Vec<Arc<Ingress>> {
        vec![ingress(serde_json::json!({
            "metadata": {"name": "shop", "namespace": "web"},
            "spec": {"rules": [
                {"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "front", "port": {"number": 80}}}},
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
                    {"path": "/exact", "pathType": "Exact", "backend": {"service": {"name": "exact", "port": {"number": 80}}}},
                ]}},
                {"host": "*.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "wild", "port": {"number": 80}}}},
                ]}},
            ]},
        }))]
    }

    fn routed(host: &str, path: &str) -> Option<String> {
        route(&two_hosts(), host, path).map(|(_, backend)| backend.name)
    }

    #[test]
    fn hosts_and_paths_route_as_the_ingress_specification_says() {
        assert_eq!(routed("shop.example.com", "/").as_deref(), Some("front"));
        assert_eq!(routed("shop.example.com", "/api").as_deref(), Some("api"));
        assert_eq!(
            routed("shop.example.com", "/api/items").as_deref(),
            Some("api")
        );
        // Prefix matches whole path elements.
        assert_eq!(
            routed("shop.example.com", "/apiary").as_deref(),
            Some("front")
        );
        assert_eq!(
            routed("shop.example.com", "/exact").as_deref(),
            Some("exact")
        );
        assert_eq!(
            routed("shop.example.com", "/exact/more").as_deref(),
            Some("front")
        );
        assert_eq!(routed("blog.example.com", "/").as_deref(), Some("wild"));
        // A wildcard covers one label only.
        assert_eq!(routed("a.b.example.com", "/"), None);
        assert_eq!(routed("other.org", "/"), None);
    }

    #[test]
    fn named_ports_resolve_against_the_service() {
        let service: Arc<Service> = Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "api", "namespace": "web"},
                "spec": {"clusterIP": "10.43.0.50",
                         "ports": [{"name": "http", "port": 8080}]},
            }))
            .unwrap(),
        );
        let (namespace, backend) = route(&two_hosts(), "shop.example.com", "/api").unwrap();
        assert_eq!(
            resolve(&[service], &namespace, &backend),
            Some(SocketAddr::from(([10, 43, 0, 50], 8080)))
        );
    }

    #[test]
    fn only_ingresses_of_the_berth_class_are_served() {
        let default: Arc<IngressClass> = Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "berth", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                "spec": {"controller": "berth.dev/ingress-controller"},
            }))
            .unwrap(),
        );
        let classless = ingress(serde_json::json!({"metadata": {"name": "a"}, "spec": {}}));
        let other = ingress(
            serde_json::json!({"metadata": {"name": "b"}, "spec": {"ingressClassName": "nginx"}}),
        );
        let ours = |ingress: &Ingress, classes: &[Arc<IngressClass>]| {
            berth_labels::ingress_has_class(ingress, INGRESS_CLASS, classes)
        };
        assert!(ours(&classless, std::slice::from_ref(&default)));
        assert!(!ours(&classless, &[]));
        assert!(!ours(&other, &[default]));
    }
}
