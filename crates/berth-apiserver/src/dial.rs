//! How the API server reaches servers inside the cluster — admission webhooks and
//! aggregated API servers: a Service by its first ready endpoint (as kube-apiserver's
//! `--enable-aggregator-routing` does, so no Service proxy is needed on the server's
//! host), over HTTPS checked against the caller's CA bundle under the Service's DNS name.

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::Shared;

/// An HTTPS client of one in-cluster server.
pub(crate) type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Whom a client trusts to be the server.
pub(crate) enum Trust<'a> {
    /// The certificates of a PEM bundle (a `caBundle`).
    Bundle(&'a [u8]),
    /// The host's roots: a webhook given by URL without a bundle.
    HostRoots,
    /// Anyone: an APIService with `insecureSkipTLSVerify`.
    Anyone,
}

/// `https://ADDRESS:PORT` of the first ready endpoint of Service `namespace/name` for
/// its port `port`, and the DNS name its certificate must carry.
pub(crate) fn service_url(
    shared: &Shared,
    (namespace, name): (&str, &str),
    port: i32,
) -> Result<(String, String), String> {
    let slices = shared
        .cache
        .typed_list::<EndpointSlice>(&format!("/registry/endpointslices/{namespace}/"));
    let address = slices
        .iter()
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .is_some_and(|service| service == name)
        })
        .find_map(|slice| {
            // The endpoints' port for the Service's: the only one, or the one numbered
            // as the Service's (the common case of port == targetPort).
            let ports = slice.ports.as_deref().unwrap_or_default();
            let target = match ports {
                [only] => only.port?,
                many => many.iter().find(|p| p.port == Some(port))?.port?,
            };
            let ready = slice
                .endpoints
                .iter()
                .find(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))?;
            Some((ready.addresses.first()?.clone(), target))
        })
        .ok_or_else(|| format!("service \"{namespace}/{name}\" has no ready endpoints"))?;
    let host = match address.0.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => address.0,
    };
    Ok((
        format!("https://{host}:{}", address.1),
        format!("{name}.{namespace}.svc"),
    ))
}

/// An HTTPS client trusting `trust`, checking the certificate against `server_name`
/// when given (else the URL's host).
pub(crate) fn https_client(
    trust: Trust<'_>,
    server_name: Option<String>,
) -> Result<Client, String> {
    use rustls::pki_types::pem::PemObject;
    let bad = |e: &dyn std::fmt::Display| format!("the CA bundle: {e}");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?;
    let trusting = match trust {
        Trust::Bundle(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(certificate.map_err(|e| bad(&e))?)
                    .map_err(|e| bad(&e))?;
            }
            builder.with_root_certificates(roots)
        }
        Trust::HostRoots => {
            use hyper_rustls::ConfigBuilderExt as _;
            builder.with_native_roots().map_err(|e| bad(&e))?
        }
        Trust::Anyone => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyone(provider))),
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(trusting.with_no_client_auth())
        .https_only();
    let connector = match server_name {
        Some(name) => {
            let name = ServerName::try_from(name).map_err(|e| bad(&e))?;
            connector.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => connector,
    };
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector.enable_http1().build()),
    )
}

/// A verifier that takes any certificate (signatures are still checked, so the
/// connection is the certificate holder's): `insecureSkipTLSVerify`.
#[derive(Debug)]
struct AcceptAnyone(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyone {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
