//! `proxy-injector certs`: a CA and a serving certificate signed by it (rcgen), for the webhook's
//! TLS and the API server's `caBundle`.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("give at least one --dns name or --ip address for the serving certificate")]
    NoNames,
}

/// PEM texts of a generated CA and serving certificate.
pub struct Generated {
    pub ca_cert: String,
    pub ca_key: String,
    pub tls_cert: String,
    pub tls_key: String,
}

/// A DER certificate's notAfter, as a Unix time.
pub fn not_after_der(der: &[u8]) -> Result<i64, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("bad certificate: {e}"))?;
    Ok(parsed.validity().not_after.timestamp())
}

/// The notAfter of the first certificate in a PEM file, as a Unix time.
pub fn not_after_pem(pem: &[u8]) -> Option<i64> {
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    not_after_der(der.as_ref()).ok()
}

pub fn generate(dns: &[String], ips: &[IpAddr], days: i64) -> Result<Generated, CertsError> {
    if dns.is_empty() && ips.is_empty() {
        return Err(CertsError::NoNames);
    }
    let now = OffsetDateTime::now_utc();
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "proxy-injector webhook CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now - Duration::hours(1);
    ca_params.not_after = now + Duration::days(days.max(1) * 2);
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let mut params = CertificateParams::new(dns.to_vec())?;
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let cn = dns.first().map(String::as_str).unwrap_or("proxy-injector");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days.max(1));
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok(Generated {
        ca_cert: ca.pem(),
        ca_key: ca_key_pem,
        tls_cert: cert.pem(),
        tls_key: key.serialize_pem(),
    })
}

/// A client certificate (PEM cert, PEM key) for `common_name`, signed by the CA of `g`: what
/// the API server presents to a webhook started with `--client-ca ca.crt`.
pub fn client_certificate(
    g: &Generated,
    common_name: &str,
    days: i64,
) -> Result<(String, String), CertsError> {
    let ca_key = KeyPair::from_pem(&g.ca_key)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&g.ca_cert, ca_key)?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days.max(1));
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `ca.crt`, `ca.key`, `tls.crt`, `tls.key` into `dir` (keys with mode 0600).
pub fn write(dir: &Path, g: &Generated) -> Result<(), CertsError> {
    write_files(
        dir,
        &[
            ("ca.crt", &g.ca_cert, false),
            ("ca.key", &g.ca_key, true),
            ("tls.crt", &g.tls_cert, false),
            ("tls.key", &g.tls_key, true),
        ],
    )
}

/// Writes `(name, text, secret)` files into `dir`; secrets get mode 0600.
pub fn write_files(dir: &Path, files: &[(&str, &String, bool)]) -> Result<(), CertsError> {
    std::fs::create_dir_all(dir).map_err(|source| CertsError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    for &(name, text, secret) in files {
        let path = dir.join(name);
        let err = |source| CertsError::Write {
            path: path.display().to_string(),
            source,
        };
        std::fs::write(&path, text).map_err(err)?;
        if secret {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
    }
    Ok(())
}

/// The DNS names of the in-cluster Service `proxy-injector` in `namespace`.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// A `kubernetes.io/tls` Secret (YAML) holding the serving certificate, and a JSON patch
/// (`kubectl patch --type=json`) that sets the webhook configuration's caBundle.
pub fn kubernetes_objects(g: &Generated, namespace: &str, secret_name: &str) -> (String, String) {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use std::collections::BTreeMap;
    let data: BTreeMap<String, ByteString> = [
        ("tls.crt", &g.tls_cert),
        ("tls.key", &g.tls_key),
        ("ca.crt", &g.ca_cert),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(secret_name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    // k8s-openapi writes apiVersion and kind itself.
    let yaml = crate::offline::to_yaml(&secret).unwrap_or_default();
    let ca = base64_simd::STANDARD.encode_to_string(&g.ca_cert);
    let patch = serde_json::json!([{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": ca}]);
    (yaml, patch.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after() {
        let g = generate(&["x.example".into()], &[], 3).unwrap();
        let t = not_after_pem(g.tls_cert.as_bytes()).unwrap();
        let in_3_days = time::OffsetDateTime::now_utc().unix_timestamp() + 3 * 86_400;
        assert!((t - in_3_days).abs() < 120, "{t} vs {in_3_days}");
        assert_eq!(not_after_pem(b"not a pem"), None);
    }

    #[test]
    fn client_certificate_is_signed_by_the_ca() {
        let g = generate(&["x.example".into()], &[], 3).unwrap();
        let (cert, _key) = client_certificate(&g, "kube-apiserver", 3).unwrap();
        let der = CertificateDer::pem_slice_iter(cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert_eq!(parsed.issuer().to_string(), "CN=proxy-injector webhook CA");
        assert!(parsed.subject().to_string().contains("kube-apiserver"));
    }
}
