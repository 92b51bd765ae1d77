//! What a request asks for, read from its method and path as kube-apiserver's
//! RequestInfo reads them: the Kubernetes verb (`list` and `watch` apart from `get`), and
//! for resource paths the group, version, resource, subresource, namespace and name.
//! The metrics label requests with it and the audit log records it.

use axum::http::{Method, Uri};

/// A request's verb and what it addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for paths that name no resource, the method in lower case.
    pub(crate) verb: &'static str,
    pub(crate) group: String,
    pub(crate) version: String,
    /// Empty for paths that name no resource (`/version`, `/apis`).
    pub(crate) resource: String,
    pub(crate) subresource: String,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
}

impl RequestInfo {
    /// The request to `uri` by `method`, read.
    pub(crate) fn of(method: &Method, uri: &Uri) -> Self {
        let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        let (group, version, rest): (&str, &str, &[&str]) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", version, rest),
            ["apis", group, version, rest @ ..] => (group, version, rest),
            _ => ("", "", &[]),
        };
        // `namespaces/NAME` alone is a namespace itself, not the place of what follows.
        let (namespace, rest) = match rest {
            ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(*namespace), rest),
            rest => (None, rest),
        };
        let (resource, name, subresource) = match rest {
            [] => ("", None, ""),
            [resource] => (*resource, None, ""),
            [resource, name] => (*resource, Some(*name), ""),
            [resource, name, subresource, ..] => (*resource, Some(*name), *subresource),
        };
        let watching = uri.query().is_some_and(|q| {
            q.split('&')
                .any(|pair| pair == "watch=true" || pair == "watch=1")
        });
        let verb = match *method {
            _ if resource.is_empty() => non_resource_verb(method),
            Method::GET if watching => "watch",
            Method::GET if name.is_none() => "list",
            Method::GET => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if name.is_none() => "deletecollection",
            Method::DELETE => "delete",
            _ => non_resource_verb(method),
        };
        Self {
            verb,
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
        }
    }

    /// Whether the request addresses a resource rather than a path like `/version`.
    pub(crate) fn is_resource(&self) -> bool {
        !self.resource.is_empty()
    }
}

/// The verb of a request to a path that names no resource: its method, lower case.
fn non_resource_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::HEAD => "head",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::OPTIONS => "options",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(method: Method, uri: &str) -> RequestInfo {
        RequestInfo::of(&method, &uri.parse().unwrap())
    }

    #[test]
    fn requests_are_read_as_kube_apiserver_reads_them() {
        let pods = read(Method::GET, "/api/v1/namespaces/a/pods?watch=true");
        assert_eq!(
            (pods.verb, pods.resource.as_str(), pods.namespace.as_deref()),
            ("watch", "pods", Some("a"))
        );
        let status = read(Method::PUT, "/api/v1/namespaces/a/pods/web/status");
        assert_eq!(
            (
                status.verb,
                status.subresource.as_str(),
                status.name.as_deref()
            ),
            ("update", "status", Some("web"))
        );
        let namespace = read(Method::DELETE, "/api/v1/namespaces/a");
        assert_eq!(
            (
                namespace.verb,
                namespace.resource.as_str(),
                namespace.namespace
            ),
            ("delete", "namespaces", None)
        );
        let deployments = read(Method::POST, "/apis/apps/v1/namespaces/a/deployments");
        assert_eq!(
            (deployments.verb, deployments.group.as_str()),
            ("create", "apps")
        );
        let version = read(Method::GET, "/version");
        assert!(!version.is_resource());
        assert_eq!(version.verb, "get");
    }
}
