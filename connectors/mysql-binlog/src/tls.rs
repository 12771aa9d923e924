//! TLS to the server: `database.ssl.mode`, the PEM truststore and keystore, and
//! [`ServerOpts::connect`], the one way the connector opens a connection (preflight, offset
//! checks, snapshot, binlog stream, lag checks), so every connection gets the same settings.
//!
//! # Modes
//! Debezium's MySQL modes, which are the MySQL client's `--ssl-mode`:
//!
//! | `database.ssl.mode` | encrypted | server certificate |
//! |---|---|---|
//! | `disabled` | never | - |
//! | `preferred` (default) | when the server offers TLS | not verified |
//! | `required` | always, else the connection fails | not verified |
//! | `verify_ca` | always | chain to `database.ssl.truststore`, which it requires |
//! | `verify_identity` | always | chain (to `database.ssl.truststore`, else the webpki roots), and a subjectAltName matching `database.hostname` |
//!
//! `verify_ca` without a truststore is a config error, as the mysql client refuses
//! `VERIFY_CA` without `--ssl-ca`: it does not check the name, so with the public webpki roots
//! any certificate a public CA issued, for any domain, would pass. Only `verify_identity`
//! falls back to the public roots (with a warning at validation).
//!
//! `preferred` asks for TLS; only when the server's greeting lacks the SSL capability
//! (mysql_async's `NoClientSslFlagFromServer`, before any credential is sent) does it connect
//! again without TLS, with one warning. Any other TLS failure fails the connection, as with
//! libmysqlclient's `PREFERRED`.
//!
//! # Files
//! Debezium takes Java key stores; we take PEM. `database.ssl.truststore` is a CA bundle,
//! `database.ssl.keystore` the client certificate (chain) and its unencrypted private key.
//! Both are read and checked when the config is validated; JKS and PKCS#12 files are refused
//! with the command that converts them. The bytes read then are the ones every connection
//! uses. The client key must be RSA: mysql_async's rustls path loads PKCS#1 keys only, so a
//! PKCS#8 RSA key (`BEGIN PRIVATE KEY`) is unwrapped to PKCS#1 here.
//!
//! # verify_ca
//! mysql_async 0.36 has `with_danger_skip_domain_validation` for this, but with rustls 0.23 it
//! is inert: it looks for the text `NotValidForName` in an error whose text no longer says so
//! (blackbeam/mysql_async#404). So `verify_ca` connects as `verify_identity` and, when the
//! handshake fails on the name only (rustls checks the name after the chain has verified),
//! connects again with the TLS host name set to a name the certificate presents: that
//! handshake verifies the chain to the same roots again. The name is remembered for later
//! connections.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tributary_runtime::der;

use mysql_async::prelude::Queryable as _;
use mysql_async::{
    ClientIdentity, Conn, DriverError, IoError, Opts, OptsBuilder, SslOpts, TlsError,
};
use rustls::CertificateError;
use rustls::pki_types::pem::{self, PemObject as _, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer};
use tracing::{debug, info, warn};

use crate::config::{MySqlConfig, SslMode};
use crate::error::MySqlError;

/// `database.ssl.truststore`: the CA certificates, read and checked at validation.
#[derive(Clone)]
pub struct TrustStore {
    pub path: PathBuf,
    pem: Vec<u8>,
    /// Number of CA certificates in the file.
    pub certificates: usize,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("path", &self.path)
            .field("certificates", &self.certificates)
            .finish()
    }
}

/// `database.ssl.keystore`: the client certificate chain and its RSA key.
#[derive(Clone)]
pub struct KeyStore {
    pub path: PathBuf,
    chain_pem: Vec<u8>,
    /// PKCS#1 DER (what mysql_async's rustls path loads).
    key_pkcs1: Vec<u8>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// The TLS part of the validated config.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub mode: SslMode,
    pub truststore: Option<TrustStore>,
    pub keystore: Option<KeyStore>,
}

/// Which store a file was given for (decides the conversion advice).
#[derive(Clone, Copy)]
enum Store {
    Trust,
    Key,
}

/// The sections of a PEM file: kind and DER bytes.
type PemSections = Vec<(SectionKind, Vec<u8>)>;

/// Reads a file that must be PEM text; refuses Java and PKCS#12 stores with the command
/// that converts them.
fn read_pem(path: &Path, store: Store) -> Result<(Vec<u8>, PemSections), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let convert = match store {
        Store::Trust => format!(
            "convert it to a PEM CA bundle, e.g. from a Java key store: keytool -list -rfc \
             -keystore {shown} -storepass <password> > truststore.pem; from PKCS#12: openssl \
             pkcs12 -in {shown} -nokeys -out truststore.pem; from a DER certificate: openssl \
             x509 -inform der -in {shown} -out truststore.pem"
        ),
        Store::Key => format!(
            "convert it to PEM with the certificate and an unencrypted key, e.g. from a Java key \
             store: keytool -importkeystore -srckeystore {shown} -destkeystore keystore.p12 \
             -deststoretype PKCS12, then openssl pkcs12 -in keystore.p12 -nodes -out \
             keystore.pem; from PKCS#12: openssl pkcs12 -in {shown} -nodes -out keystore.pem"
        ),
    };
    if bytes.starts_with(&[0xFE, 0xED, 0xFE, 0xED]) || bytes.starts_with(&[0xCE, 0xCE, 0xCE, 0xCE])
    {
        return Err(format!(
            "{shown} is a Java key store (JKS/JCEKS), but a PEM file is expected; {convert}"
        ));
    }
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let what = if bytes.is_empty() {
            "is empty".to_owned()
        } else if bytes.first() == Some(&0x30) {
            "is binary DER (PKCS#12 or a DER certificate), not PEM".to_owned()
        } else {
            "is not a PEM file (no -----BEGIN line)".to_owned()
        };
        return Err(format!("{shown} {what}; {convert}"));
    }
    if std::str::from_utf8(&bytes).is_err() {
        return Err(format!(
            "{shown} is not UTF-8 text; keep only the PEM sections (ASCII) in it"
        ));
    }
    let mut sections = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        sections.push(section.map_err(|e| format!("{shown} is not valid PEM: {}", pem_error(&e)))?);
    }
    Ok((bytes, sections))
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a section has no end line {:?}",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("bad section start {:?}", String::from_utf8_lossy(line))
        }
        other => format!("{other:?}"),
    }
}

impl TrustStore {
    /// Reads and checks a PEM CA bundle: at least one certificate, each usable as a root.
    pub fn read(path: &str) -> Result<TrustStore, String> {
        let path = PathBuf::from(path);
        // `pem` is handed to mysql_async as validated here.
        let (pem, sections) = read_pem(&path, Store::Trust)?;
        let mut roots = rustls::RootCertStore::empty();
        let mut certificates = 0;
        for (kind, der) in sections {
            if kind != SectionKind::Certificate {
                continue;
            }
            certificates += 1;
            roots.add(CertificateDer::from(der)).map_err(|e| {
                format!(
                    "certificate {certificates} in {} cannot be used as a CA: {e}",
                    path.display()
                )
            })?;
        }
        if certificates == 0 {
            return Err(format!(
                "{} holds no CERTIFICATE section; give the PEM file of the CA that signed the \
                 server certificate",
                path.display()
            ));
        }
        Ok(TrustStore {
            path,
            pem,
            certificates,
        })
    }
}

impl KeyStore {
    /// Reads and checks a PEM with the client certificate chain and its unencrypted RSA key,
    /// and that the key belongs to the first certificate.
    pub fn read(path: &str) -> Result<KeyStore, String> {
        let path = PathBuf::from(path);
        let shown = path.display();
        let (text, sections) = read_pem(&path, Store::Key)?;
        let chain: Vec<CertificateDer<'static>> = sections
            .iter()
            .filter(|(k, _)| *k == SectionKind::Certificate)
            .map(|(_, der)| CertificateDer::from(der.clone()))
            .collect();
        let mut keys = sections.iter().filter(|(k, _)| {
            matches!(
                k,
                SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey
            )
        });
        let key = keys.next();
        if chain.is_empty() {
            return Err(format!(
                "{shown} holds no CERTIFICATE section; put the client certificate (then any \
                 intermediates) and its private key in one PEM file"
            ));
        }
        let Some((kind, key_der)) = key else {
            let encrypted = text.windows(9).any(|w| w == b"ENCRYPTED");
            return Err(if encrypted {
                format!(
                    "the private key in {shown} is encrypted, which is not supported; decrypt it: \
                     openssl pkey -in {shown} -out key.pem, and put the certificate and key.pem \
                     in one file"
                )
            } else {
                format!(
                    "{shown} holds no private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY); \
                     append the client certificate's unencrypted key"
                )
            });
        };
        if keys.next().is_some() {
            return Err(format!(
                "{shown} holds more than one private key; keep only the client certificate's"
            ));
        }
        let key_pkcs1 = match kind {
            SectionKind::RsaPrivateKey => key_der.clone(),
            SectionKind::PrivateKey => rsa_from_pkcs8(key_der).ok_or_else(|| {
                format!(
                    "the private key in {shown} is not an RSA key; the MySQL client used here \
                     supports RSA client keys only: issue an RSA client certificate"
                )
            })?,
            _ => {
                return Err(format!(
                    "the private key in {shown} is an EC key; the MySQL client used here \
                     supports RSA client keys only: issue an RSA client certificate"
                ));
            }
        };
        // The key parses and belongs to the first certificate.
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let der = PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(key_pkcs1.clone()));
        rustls::sign::CertifiedKey::from_der(chain, der, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the private key in {shown} does not belong to its first certificate; the file \
                 must start with the client certificate, followed by its key"
            ),
            e => format!("the client certificate or key in {shown} cannot be used: {e}"),
        })?;
        // mysql_async reads a binary (non-UTF-8) key as PKCS#1 DER; DER of an RSA key
        // starts 0x30 0x82, never UTF-8.
        if std::str::from_utf8(&key_pkcs1).is_ok() {
            return Err(format!("the private key in {shown} is not a valid RSA key"));
        }
        Ok(KeyStore {
            path,
            chain_pem: text,
            key_pkcs1,
        })
    }
}

// --- minimal DER: the PKCS#1 key inside a PKCS#8 RSA key -------------------------------------

/// `rsaEncryption` (1.2.840.113549.1.1.1).
const RSA_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`, if the key is RSA.
fn rsa_from_pkcs8(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let (0x30, info, _) = der::element(pkcs8)? else {
        return None;
    };
    let (0x02, _version, rest) = der::element(info)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der::element(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der::element(algorithm)? else {
        return None;
    };
    if oid != RSA_OID {
        return None;
    }
    let (0x04, key, _) = der::element(rest)? else {
        return None;
    };
    Some(key.to_vec())
}

// --- connecting ------------------------------------------------------------------------------

/// How the connector reaches its server: client options with TLS as configured, shared by
/// every connection of a connector (clones share the `verify_ca` name and the warning).
#[derive(Clone)]
pub struct ServerOpts {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Arc<str>,
    target: String,
    hostname: String,
    mode: SslMode,
    truststore: Option<PathBuf>,
    /// `database.ssl.keystore` is set (a client certificate is offered).
    keystore: bool,
    plain: Opts,
    ssl: Option<SslOpts>,
    /// `verify_ca`: the certificate name the last verified handshake used.
    ca_name: Mutex<Option<String>>,
    /// `preferred`: the "server offers no TLS" warning was logged.
    warned_plaintext: AtomicBool,
}

/// What a connection negotiated, for the log and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// `Ssl_version`, e.g. `TLSv1.3`; empty without TLS.
    pub version: String,
    /// `Ssl_cipher`; empty without TLS.
    pub cipher: String,
}

impl ServerOpts {
    pub fn new(cfg: &MySqlConfig) -> ServerOpts {
        let plain: Opts = OptsBuilder::default()
            .ip_or_hostname(cfg.hostname.clone())
            .tcp_port(cfg.port)
            .user(Some(cfg.user.clone()))
            .pass(cfg.password.as_ref().map(|p| p.expose().to_owned()))
            .prefer_socket(false)
            .into();
        let tls = &cfg.tls;
        let ssl = (tls.mode != SslMode::Disabled).then(|| {
            let mut ssl = SslOpts::default();
            if let Some(keys) = &tls.keystore {
                ssl = ssl.with_client_identity(Some(ClientIdentity::new(
                    keys.chain_pem.clone().into(),
                    keys.key_pkcs1.clone().into(),
                )));
            }
            match (tls.mode, &tls.truststore) {
                (SslMode::VerifyCa | SslMode::VerifyIdentity, Some(trust)) => ssl
                    .with_root_certs(vec![trust.pem.clone().into()])
                    .with_disable_built_in_roots(true),
                // The name is checked, so the built-in public roots are safe to use.
                (SslMode::VerifyIdentity, None) => ssl,
                // Never the public roots without a name check (validation requires a
                // truststore; `connect` refuses without one).
                (SslMode::VerifyCa, None) => ssl.with_disable_built_in_roots(true),
                _ => ssl.with_danger_accept_invalid_certs(true),
            }
        });
        ServerOpts {
            inner: Arc::new(Inner {
                connector: cfg.name.clone(),
                target: cfg.target(),
                hostname: cfg.hostname.clone(),
                mode: tls.mode,
                truststore: tls.truststore.as_ref().map(|t| t.path.clone()),
                keystore: tls.keystore.is_some(),
                plain,
                ssl,
                ca_name: Mutex::new(None),
                warned_plaintext: AtomicBool::new(false),
            }),
        }
    }

    pub fn mode(&self) -> SslMode {
        self.inner.mode
    }

    fn secure(&self, host_override: Option<&str>) -> Option<Opts> {
        let ssl = self.inner.ssl.clone()?;
        let ssl = ssl.with_danger_tls_hostname_override(host_override.map(str::to_owned));
        Some(
            OptsBuilder::from_opts(self.inner.plain.clone())
                .ssl_opts(Some(ssl))
                .into(),
        )
    }

    /// Opens a connection as `database.ssl.mode` says.
    pub async fn connect(&self) -> Result<Conn, MySqlError> {
        let inner = &self.inner;
        if inner.ssl.is_some() {
            ensure_crypto_provider();
        }
        match inner.mode {
            SslMode::Disabled => self.plaintext().await,
            SslMode::Preferred => match self.attempt(None).await {
                Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)) => {
                    if !inner.warned_plaintext.swap(true, Ordering::Relaxed) {
                        warn!(
                            connector = %inner.connector,
                            server = %inner.target,
                            "the server does not offer TLS; connecting without encryption \
                             (database.ssl.mode=preferred). Set database.ssl.mode=required to \
                             refuse unencrypted connections"
                        );
                    }
                    self.plaintext().await
                }
                other => other.map_err(|e| self.error(e)),
            },
            SslMode::Required | SslMode::VerifyIdentity => {
                self.attempt(None).await.map_err(|e| self.error(e))
            }
            SslMode::VerifyCa => self.connect_verify_ca().await,
        }
    }

    async fn plaintext(&self) -> Result<Conn, MySqlError> {
        Conn::new(self.inner.plain.clone())
            .await
            .map_err(|e| self.error_plaintext(e))
    }

    async fn attempt(&self, host_override: Option<&str>) -> Result<Conn, mysql_async::Error> {
        match self.secure(host_override) {
            Some(opts) => Conn::new(opts).await,
            None => Conn::new(self.inner.plain.clone()).await,
        }
    }

    /// See the module doc: verify as `verify_identity`, and on a name mismatch alone again
    /// with a name the certificate presents.
    async fn connect_verify_ca(&self) -> Result<Conn, MySqlError> {
        if self.inner.truststore.is_none() {
            // Validation refuses this; never connect trusting any CA's certificate for any name.
            return Err(MySqlError::Tls(
                "database.ssl.mode=verify_ca requires database.ssl.truststore (the host name is \
                 not checked, so the server certificate must chain to your own CA); set it, or \
                 use database.ssl.mode=verify_identity"
                    .to_owned(),
            ));
        }
        let remembered = self.inner.ca_name.lock().ok().and_then(|name| name.clone());
        let err = match self.attempt(remembered.as_deref()).await {
            Ok(conn) => return Ok(conn),
            Err(e) => e,
        };
        let Some(presented) = name_mismatch(&err) else {
            return Err(self.error(err));
        };
        let Some(name) = certificate_name(presented) else {
            return Err(MySqlError::Tls(format!(
                "the server certificate of {} is signed by a trusted CA but names no DNS name \
                 or IP address in its subjectAltName, so it cannot be verified; reissue it with \
                 a subjectAltName",
                self.inner.target
            )));
        };
        if remembered.as_deref() == Some(name.as_str()) {
            return Err(self.error(err));
        }
        debug!(
            connector = %self.inner.connector,
            name = %name,
            "verify_ca: the server certificate does not name database.hostname; verifying it for a name it presents"
        );
        if let Ok(mut slot) = self.inner.ca_name.lock() {
            *slot = Some(name.clone());
        }
        self.attempt(Some(&name)).await.map_err(|e| self.error(e))
    }

    /// What a connection negotiated (`Ssl_version`, `Ssl_cipher`).
    pub async fn negotiated(conn: &mut Conn) -> Result<Negotiated, MySqlError> {
        let rows: Vec<(String, String)> = conn
            .query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
            .await
            .map_err(|e| MySqlError::query("SHOW SESSION STATUS (TLS)", e))?;
        let get = |name: &str| {
            rows.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Ok(Negotiated {
            version: get("Ssl_version"),
            cipher: get("Ssl_cipher"),
        })
    }

    /// Logs, once per task, whether the connection is encrypted and how (best effort: a
    /// failed status query is logged, not fatal).
    pub async fn log_negotiated(&self, conn: &mut Conn) {
        let inner = &self.inner;
        let n = match Self::negotiated(conn).await {
            Ok(n) => n,
            Err(e) => {
                warn!(connector = %inner.connector, error = %e, "cannot read the TLS status of the connection");
                return;
            }
        };
        let mode = inner.mode.as_str();
        if n.cipher.is_empty() {
            info!(connector = %inner.connector, server = %inner.target, ssl_mode = mode, "connected without TLS");
        } else {
            let verified = match inner.mode {
                SslMode::VerifyIdentity => "certificate chain and host name verified",
                SslMode::VerifyCa => "certificate chain verified, host name not checked",
                _ => "server certificate not verified",
            };
            info!(
                connector = %inner.connector,
                server = %inner.target,
                ssl_mode = mode,
                tls_version = %n.version,
                cipher = %n.cipher,
                "connected with TLS ({verified})"
            );
        }
    }

    /// A failed plaintext connection: an access denial may be the server requiring TLS.
    fn error_plaintext(&self, e: mysql_async::Error) -> MySqlError {
        let target = self.inner.target.clone();
        match e {
            mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045) => {
                MySqlError::AccessDenied {
                    target,
                    message: s.message,
                    hint: format!(
                        "; the connection was not encrypted (database.ssl.mode={}): if the user \
                         requires TLS (REQUIRE SSL or X509), set database.ssl.mode=verify_identity \
                         (or required)",
                        self.inner.mode.as_str()
                    ),
                }
            }
            e => self.error(e),
        }
    }

    /// Classifies a failed connection: TLS problems say what to change.
    fn error(&self, e: mysql_async::Error) -> MySqlError {
        let inner = &self.inner;
        let target = &inner.target;
        let mode = inner.mode.as_str();
        if let mysql_async::Error::Server(s) = &e
            && s.code == 3159
        {
            return MySqlError::Tls(format!(
                "{target} refuses unencrypted connections (require_secure_transport=ON): {}; set \
                 database.ssl.mode=verify_identity (or required)",
                s.message
            ));
        }
        if let mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer) = &e {
            return MySqlError::Tls(format!(
                "{target} does not offer TLS, which database.ssl.mode={mode} requires: configure \
                 ssl_cert and ssl_key on the server, or set database.ssl.mode=preferred to allow \
                 an unencrypted connection"
            ));
        }
        let Some(tls) = rustls_error(&e) else {
            return match MySqlError::connect(target.clone(), e) {
                MySqlError::AccessDenied {
                    target,
                    message,
                    hint,
                } if !inner.keystore => MySqlError::AccessDenied {
                    target,
                    message,
                    hint: format!(
                        "{hint}; if the user requires a client certificate (REQUIRE X509, \
                         ISSUER or SUBJECT), set database.ssl.keystore"
                    ),
                },
                other => other,
            };
        };
        let roots = match &inner.truststore {
            Some(path) => format!("database.ssl.truststore ({})", path.display()),
            None => "the built-in webpki roots (database.ssl.truststore is not set)".to_owned(),
        };
        let message = match tls {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                    "the server certificate of {target} is not signed by a CA in {roots} \
                     (database.ssl.mode={mode}): set database.ssl.truststore to the PEM of the \
                     CA that signed it"
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    let names = match cert {
                        CertificateError::NotValidForNameContext { presented, .. } => {
                            let names: Vec<String> =
                                presented.iter().filter_map(|p| presented_name(p)).collect();
                            format!(" (it names {})", names.join(", "))
                        }
                        _ => String::new(),
                    };
                    let or_verify_ca = match (inner.mode, &inner.truststore) {
                        (SslMode::VerifyIdentity, Some(_)) => {
                            ", or set database.ssl.mode=verify_ca to verify the CA only"
                        }
                        (SslMode::VerifyIdentity, None) => {
                            ", or set database.ssl.truststore to the CA that signed it and \
                             database.ssl.mode=verify_ca to verify the CA only"
                        }
                        _ => "",
                    };
                    format!(
                        "the server certificate of {target} is not valid for host {}{names} \
                         (database.ssl.mode={mode}): set database.hostname to a name in the \
                         certificate{or_verify_ca}",
                        inner.hostname
                    )
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                    "the server certificate of {target} has expired: renew it on the server"
                ),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    format!(
                        "the server certificate of {target} is not valid yet: check the clocks \
                         of this host and the server"
                    )
                }
                other => format!(
                    "the server certificate of {target} was rejected \
                     (database.ssl.mode={mode}): {other}"
                ),
            },
            rustls::Error::AlertReceived(alert) => format!(
                "{target} ended the TLS handshake ({alert:?}); if the server requires a client \
                 certificate, set database.ssl.keystore to a PEM with one signed by a CA the \
                 server trusts"
            ),
            other => format!("TLS with {target} failed (database.ssl.mode={mode}): {other}"),
        };
        MySqlError::Tls(message)
    }
}

/// The rustls error behind a failed connection, if TLS failed.
fn rustls_error(e: &mysql_async::Error) -> Option<&rustls::Error> {
    match e {
        mysql_async::Error::Io(IoError::Tls(TlsError::Tls(tls))) => Some(tls),
        mysql_async::Error::Io(IoError::Io(io)) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// The names the certificate presents, when verification failed on the name alone.
fn name_mismatch(e: &mysql_async::Error) -> Option<&[String]> {
    match rustls_error(e)? {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => Some(presented),
        _ => None,
    }
}

/// One subjectAltName as webpki lists it (`DnsName("db.example.com")`, `IpAddress(10.0.0.1)`),
/// as a host name to verify for: a wildcard's `*` becomes a label it matches.
fn presented_name(presented: &str) -> Option<String> {
    if let Some(dns) = presented
        .strip_prefix("DnsName(\"")
        .and_then(|s| s.strip_suffix("\")"))
    {
        let dns = match dns.strip_prefix("*.") {
            Some(parent) => format!("tributary-verify-ca.{parent}"),
            None => dns.to_owned(),
        };
        return rustls::pki_types::ServerName::try_from(dns.as_str())
            .is_ok()
            .then_some(dns);
    }
    let ip = presented
        .strip_prefix("IpAddress(")
        .and_then(|s| s.strip_suffix(')'))?;
    ip.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

/// The first usable name the certificate presents.
fn certificate_name(presented: &[String]) -> Option<String> {
    presented.iter().find_map(|p| presented_name(p))
}

/// mysql_async's rustls path builds its client config with the process-wide provider
/// (`ClientConfig::builder()`), which panics when more than one provider is compiled in and
/// none is installed. aws-lc-rs is the workspace's provider (as in `runtime/src/rest`).
fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: a provider is already installed, which is what we need.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn truststore_reads_a_pem_bundle_and_refuses_java_and_pkcs12() {
        let trust = TrustStore::read(&fixture("ca.pem")).expect("pem bundle");
        assert_eq!(trust.certificates, 1);

        let err = TrustStore::read(&fixture("truststore.jks")).expect_err("jks");
        assert!(
            err.contains("is a Java key store") && err.contains("keytool -list -rfc"),
            "{err}"
        );
        let err = TrustStore::read(&fixture("client.p12")).expect_err("p12");
        assert!(
            err.contains("binary DER") && err.contains("openssl pkcs12 -in"),
            "{err}"
        );
        let err = TrustStore::read(&fixture("nope.pem")).expect_err("missing");
        assert!(
            err.contains("cannot read") && err.contains("nope.pem"),
            "{err}"
        );
        let err = TrustStore::read(&fixture("README.md")).expect_err("not pem");
        assert!(err.contains("no -----BEGIN line"), "{err}");
    }

    #[test]
    fn keystore_takes_rsa_keys_in_pkcs1_and_pkcs8() {
        let pkcs1 = KeyStore::read(&fixture("client-pkcs1.pem")).expect("pkcs1");
        let pkcs8 = KeyStore::read(&fixture("client-pkcs8.pem")).expect("pkcs8");
        // The PKCS#8 key unwrapped is the same PKCS#1 key.
        assert_eq!(pkcs1.key_pkcs1, pkcs8.key_pkcs1);
        assert_eq!(pkcs1.key_pkcs1.first(), Some(&0x30));
        let shown = format!("{pkcs8:?}");
        assert!(
            shown.contains("[redacted]")
                && !shown.contains(&format!("{:?}", &pkcs8.key_pkcs1[..6])),
            "{shown}"
        );
    }

    #[test]
    fn keystore_errors_name_the_problem_and_the_fix() {
        for (file, needle) in [
            ("client-ec.pem", "is an EC key"),
            ("client-encrypted.pem", "openssl pkey -in"),
            (
                "client-mismatched.pem",
                "does not belong to its first certificate",
            ),
            ("ca.pem", "holds no private key"),
            ("client.p12", "openssl pkcs12 -in"),
            ("truststore.jks", "keytool -importkeystore"),
        ] {
            let err = KeyStore::read(&fixture(file)).expect_err(file);
            assert!(err.contains(needle), "{file}: {err}");
        }
    }

    #[test]
    fn malformed_or_non_rsa_pkcs8_yields_no_rsa_key() {
        assert_eq!(rsa_from_pkcs8(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        assert_eq!(rsa_from_pkcs8(&[0x30, 0x82, 0xFF]), None);
        assert_eq!(rsa_from_pkcs8(&[]), None);
        // PrivateKeyInfo { 0, ecPublicKey (1.2.840.10045.2.1), OCTET STRING 01 }.
        let ec = [
            0x30, 0x11, 0x02, 0x01, 0x00, 0x30, 0x09, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D,
            0x02, 0x01, 0x04, 0x01, 0x01,
        ];
        assert_eq!(rsa_from_pkcs8(&ec), None);
        // The same with rsaEncryption gives the inner key.
        let mut rsa = vec![0x30, 0x13, 0x02, 0x01, 0x00, 0x30, 0x0B, 0x06, 0x09];
        rsa.extend_from_slice(RSA_OID);
        rsa.extend_from_slice(&[0x04, 0x01, 0x01]);
        assert_eq!(rsa_from_pkcs8(&rsa), Some(vec![0x01]));
    }

    #[test]
    fn presented_names_become_host_names() {
        assert_eq!(
            presented_name("DnsName(\"tributary-test-server\")").as_deref(),
            Some("tributary-test-server")
        );
        assert_eq!(
            presented_name("DnsName(\"*.db.example\")").as_deref(),
            Some("tributary-verify-ca.db.example")
        );
        assert_eq!(
            presented_name("IpAddress(127.0.0.1)").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(presented_name("IpAddress(::1)").as_deref(), Some("::1"));
        assert_eq!(presented_name("DirectoryName"), None);
        assert_eq!(
            certificate_name(&["DirectoryName".to_owned(), "IpAddress(10.0.0.7)".to_owned()])
                .as_deref(),
            Some("10.0.0.7")
        );
    }

    // --- preferred / required against a server that offers no TLS ----------------------

    fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).expect("small packet");
        let mut out = len.to_le_bytes()[..3].to_vec();
        out.push(seq);
        out.extend_from_slice(payload);
        out
    }

    /// A protocol-10 greeting without the CLIENT_SSL capability.
    fn greeting_without_tls() -> Vec<u8> {
        const CLIENT_SSL: u32 = 0x0800;
        // LONG_PASSWORD, PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION, PLUGIN_AUTH.
        let caps: u32 = 0x0000_0001 | 0x0000_0200 | 0x0000_2000 | 0x0000_8000 | 0x0008_0000;
        assert_eq!(caps & CLIENT_SSL, 0);
        let mut p = vec![10];
        p.extend_from_slice(b"5.7.99-no-tls\0");
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(33);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"mysql_native_password\0");
        frame(0, &p)
    }

    /// Serves greetings without TLS; answers any first client packet with access denied.
    /// Sends the first packet of each connection (empty when the client hung up) to `tx`.
    async fn server_without_tls() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                if sock.write_all(&greeting_without_tls()).await.is_err() {
                    continue;
                }
                let mut header = [0u8; 4];
                if sock.read_exact(&mut header).await.is_err() {
                    let _ = tx.send(Vec::new());
                    continue;
                }
                let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
                let mut payload = vec![0; len];
                if sock.read_exact(&mut payload).await.is_err() {
                    continue;
                }
                let _ = tx.send(payload);
                let mut err = vec![0xFF];
                err.extend_from_slice(&1045u16.to_le_bytes());
                err.extend_from_slice(b"#28000Access denied for user 'fakeuser'");
                let _ = sock.write_all(&frame(header[3] + 1, &err)).await;
            }
        });
        (port, rx)
    }

    fn server_opts(port: u16, mode: &str) -> ServerOpts {
        ServerOpts::new(&validated(port, mode))
    }

    fn validated(port: u16, mode: &str) -> MySqlConfig {
        let ca = fixture("ca.pem");
        let port = port.to_string();
        let mut pairs = vec![
            ("connector.class", crate::config::MYSQL_CLASS),
            ("database.hostname", "127.0.0.1"),
            ("database.port", &port),
            ("database.user", "fakeuser"),
            ("database.password", "pw"),
            ("database.ssl.mode", mode),
        ];
        if mode == "verify_ca" {
            // verify_ca requires a truststore.
            pairs.push(("database.ssl.truststore", &ca));
        }
        let raw: tributary_runtime::config::RawConfig = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let def = tributary_runtime::registry::Registry::config_def(&crate::MySqlPlugin);
        let parsed = def.parse(&raw).expect("parses");
        crate::config::validate("t", &parsed).expect("valid")
    }

    /// The first packet of every connection the server served so far: ends with a sentinel
    /// connection of our own (the server serves connections one at a time, in order).
    async fn recorded(
        port: u16,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    ) -> Vec<Vec<u8>> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut sentinel = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("sentinel connects");
        let mut greeting = vec![0; greeting_without_tls().len()];
        sentinel.read_exact(&mut greeting).await.expect("greeting");
        sentinel
            .write_all(&frame(1, b"sentinel"))
            .await
            .expect("sentinel packet");
        let mut out = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the fake server answers")
                .expect("the fake server runs");
            if next == b"sentinel" {
                return out;
            }
            out.push(next);
        }
    }

    #[tokio::test]
    async fn preferred_falls_back_to_plaintext_when_the_server_offers_no_tls() {
        let (port, mut rx) = server_without_tls().await;
        let err = server_opts(port, "preferred")
            .connect()
            .await
            .expect_err("the fake server denies access");
        // First attempt: TLS asked, the greeting has no SSL flag, nothing sent. Second: a
        // plaintext handshake response (longer than the 32-byte SSLRequest) with the user.
        let firsts = recorded(port, &mut rx).await;
        assert_eq!(firsts.len(), 2, "{firsts:?}");
        assert!(firsts[0].is_empty(), "{:?}", firsts[0]);
        assert!(
            firsts[1].len() > 32 && firsts[1].windows(9).any(|w| w == b"fakeuser\0"),
            "{:?}",
            firsts[1]
        );
        let text = err.to_string();
        assert!(
            matches!(err, MySqlError::AccessDenied { .. })
                && text.contains("not encrypted (database.ssl.mode=preferred)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn required_refuses_a_server_that_offers_no_tls() {
        for mode in ["required", "verify_ca", "verify_identity"] {
            let (port, mut rx) = server_without_tls().await;
            let err = server_opts(port, mode)
                .connect()
                .await
                .expect_err("no TLS offered");
            let firsts = recorded(port, &mut rx).await;
            assert_eq!(
                firsts,
                vec![Vec::<u8>::new()],
                "{mode}: one attempt, no credentials"
            );
            assert!(
                matches!(&err, MySqlError::Tls(m) if m.contains(&format!(
                    "does not offer TLS, which database.ssl.mode={mode} requires"
                ))),
                "{mode}: {err}"
            );
            assert_eq!(err.kind(), tributary_runtime::error::ErrorKind::Config);
        }
    }

    #[tokio::test]
    async fn verify_ca_without_a_truststore_never_connects() {
        // Validation refuses this config; should one get through anyway, no connection is
        // made (rather than one trusting the public roots without a name check).
        let (port, mut rx) = server_without_tls().await;
        let mut cfg = validated(port, "verify_ca");
        cfg.tls.truststore = None;
        let err = ServerOpts::new(&cfg)
            .connect()
            .await
            .expect_err("no truststore");
        assert!(
            matches!(&err, MySqlError::Tls(m) if m.contains(
                "database.ssl.mode=verify_ca requires database.ssl.truststore"
            )),
            "{err}"
        );
        assert_eq!(err.kind(), tributary_runtime::error::ErrorKind::Config);
        assert!(
            recorded(port, &mut rx).await.is_empty(),
            "no connection made"
        );
    }
}
