//! The server's certificates, made on first start as k3s makes them: a cluster CA, and a
//! serving certificate it signs for the names clients dial (localhost, 127.0.0.1 and the
//! bind address). Kept under `<data-dir>/tls/`; the CA goes into every kubeconfig, and
//! signs the client certificates users authenticate with (`berth kubeconfig`).

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};

use crate::{Error, Result};

/// PEM texts of the CA certificate, the serving certificate and its key.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The cluster CA certificate.
    pub ca: String,
    /// The serving certificate.
    pub cert: String,
    /// The serving certificate's private key.
    pub key: String,
}

fn tls_error(error: rcgen::Error) -> Error {
    Error::Setup(format!("make the certificates: {error}"))
}

impl Pki {
    /// The certificates under `dir`, made when missing.
    pub fn ensure(dir: &Path, address: IpAddr) -> Result<Self> {
        let paths = [
            dir.join("ca.crt"),
            dir.join("server.crt"),
            dir.join("server.key"),
        ];
        if paths.iter().all(|p| p.exists()) {
            let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
            return Ok(Self {
                ca: read(&paths[0])?,
                cert: read(&paths[1])?,
                key: read(&paths[2])?,
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let ca_key = KeyPair::generate().map_err(tls_error)?;
        let ca_params = ca_params()?;
        let ca = ca_params.self_signed(&ca_key).map_err(tls_error)?;
        crate::write_private(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().map_err(tls_error)?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "kubernetes".to_string()])
                .map_err(tls_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "berth-server");
        for ip in [IpAddr::from([127, 0, 0, 1]), address] {
            if !ip.is_unspecified() && !params.subject_alt_names.contains(&SanType::IpAddress(ip)) {
                params.subject_alt_names.push(SanType::IpAddress(ip));
            }
        }
        let cert = params.signed_by(&key, &issuer).map_err(tls_error)?;
        let pki = Self {
            ca: ca.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        for (path, text) in paths.iter().zip([&pki.ca, &pki.cert, &pki.key]) {
            crate::write_private(path, text.as_bytes())?;
        }
        Ok(pki)
    }
}

/// The cluster CA's subject and constraints, the same each time they are made.
fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "berth-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ok(params)
}

/// The cluster CA under `dir`, to sign with.
fn issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>> {
    let path = dir.join("ca.key");
    let ca_key = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let ca_key = KeyPair::from_pem(&ca_key).map_err(tls_error)?;
    Ok(Issuer::new(ca_params()?, ca_key))
}

/// A node's serving certificate and its key (PEM), signed by the cluster CA under
/// `dir`, for its name and addresses, as a kubelet's (`system:node:<name>`).
pub fn issue_serving_certificate(
    dir: &Path,
    node: &str,
    addresses: &[IpAddr],
) -> Result<(String, String)> {
    let issuer = issuer(dir)?;
    let key = KeyPair::generate().map_err(tls_error)?;
    let mut params = CertificateParams::new(vec![node.to_string()]).map_err(tls_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("system:node:{node}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:nodes");
    params
        .subject_alt_names
        .extend(addresses.iter().map(|ip| SanType::IpAddress(*ip)));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).map_err(tls_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A client certificate and its key (PEM) for `user` in `group`, signed by the cluster
/// CA under `dir`: Kubernetes reads the user from the common name and the group from
/// the organization.
pub fn issue_client_certificate(
    dir: &Path,
    user: &str,
    group: Option<&str>,
) -> Result<(String, String)> {
    let issuer = issuer(dir)?;
    let key = KeyPair::generate().map_err(tls_error)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    params.distinguished_name.push(DnType::CommonName, user);
    if let Some(group) = group {
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).map_err(tls_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What a certificate signed for a CertificateSigningRequest is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Authenticating to the API server (`kubernetes.io/kube-apiserver-client…`).
    Client,
    /// A kubelet's serving certificate (`kubernetes.io/kubelet-serving`).
    Serving,
}

/// The certificate (PEM) the cluster CA under `dir` signs for the PEM certificate
/// request `request`, for `purpose`, valid from now for `lifetime`; the request's
/// signature is checked first.
pub(crate) fn sign_request(
    dir: &Path,
    request: &str,
    purpose: Purpose,
    lifetime: std::time::Duration,
) -> Result<String> {
    let issuer = issuer(dir)?;
    let mut request =
        rcgen::CertificateSigningRequestParams::from_pem(request).map_err(tls_error)?;
    let now = time::OffsetDateTime::now_utc();
    request.params.not_before = now;
    request.params.not_after = now + lifetime;
    request.params.is_ca = rcgen::IsCa::NoCa;
    request.params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    request.params.extended_key_usages = vec![match purpose {
        Purpose::Client => ExtendedKeyUsagePurpose::ClientAuth,
        Purpose::Serving => ExtendedKeyUsagePurpose::ServerAuth,
    }];
    if purpose == Purpose::Client {
        request.params.subject_alt_names.clear();
    }
    let certificate = request.signed_by(&issuer).map_err(tls_error)?;
    Ok(certificate.pem())
}
