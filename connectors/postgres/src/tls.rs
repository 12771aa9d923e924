//! TLS for both connection kinds: the tokio-postgres SQL connections and our own replication
//! client ([`crate::replication`]), with the same settings (`database.sslmode`,
//! `database.sslrootcert`, `database.sslcert`, `database.sslkey`).
//!
//! Both negotiate as libpq does: an `SSLRequest`, one byte back (`S` or `N`), then the rustls
//! handshake on the same socket before the startup message. The modes:
//!
//! | `database.sslmode` | TLS | server certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow`, `prefer` | when the server accepts (`N`: plaintext) | as `require` |
//! | `require` | always | nothing; the chain when `database.sslrootcert` is set (libpq) |
//! | `verify-ca` | always | chain to `database.sslrootcert`, which it requires |
//! | `verify-full` | always | chain and host name (`database.hostname`, DNS name or IP) |
//!
//! `allow` is treated as `prefer` (libpq's `allow` tries plaintext first). A failed handshake is
//! an error in every mode: unlike libpq's `prefer` we do not retry in plaintext then.
//! `verify-ca` without `database.sslrootcert` is a config error, as in libpq: it does not check
//! the name, so with public CAs any certificate they issued, for any domain, would pass.
//! Without `database.sslrootcert`, `verify-full` trusts the system store
//! (`rustls-native-certs`: `SSL_CERT_FILE`/`SSL_CERT_DIR`, else the OS store), where libpq
//! would read `~/.postgresql/root.crt`.
//!
//! Channel binding: the connection hands `tls-server-end-point` (RFC 5929) to SCRAM and uses
//! `SCRAM-SHA-256-PLUS` when the server offers it; the server's final SCRAM message (checked
//! by both connection kinds) then proves it knows the password's SCRAM secret and saw the same
//! TLS channel, so a man in the middle that terminated TLS is detected. That protects only when
//! SCRAM is used. Channel binding is not required (as libpq's default `channel_binding=prefer`;
//! there is no setting for it), so a peer that asks for cleartext (`password`) gets the
//! password, and one that asks for `md5` gets a response it can relay to the real server or
//! brute-force offline. Where the certificate is not verified (`prefer`, `require` without
//! `database.sslrootcert`) that peer may be a man in the middle; only a verified certificate
//! (`verify-full`; or the chain to `database.sslrootcert` in the other modes) authenticates the
//! server before any password is sent.
//!
//! The first connection of each kind logs whether it is encrypted; later ones log only when
//! that changes (debug otherwise).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tributary_runtime::der;

use postgres_protocol::message::frontend;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct,
    RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::{debug, info, warn};

use tributary_runtime::config::ConfigErrors;

use crate::config::SslMode;
use crate::error::PgError;

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Nothing (`require`/`prefer` without `database.sslrootcert`).
    None,
    /// The chain up to a trusted CA, not the name (`verify-ca`).
    Chain,
    /// Chain and host name (`verify-full`).
    Full,
}

impl Verification {
    fn as_str(self) -> &'static str {
        match self {
            Verification::None => "none",
            Verification::Chain => "chain",
            Verification::Full => "chain and host name",
        }
    }
}

/// The TLS files of a config, as given.
#[derive(Debug, Default, Clone, Copy)]
pub struct TlsFiles<'a> {
    pub rootcert: Option<&'a str>,
    pub cert: Option<&'a str>,
    pub key: Option<&'a str>,
}

/// TLS settings of one connector, shared by its SQL and replication connections.
#[derive(Clone)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub verification: Verification,
    /// `None` with `database.sslmode=disable` (or when the config has errors).
    client: Option<Arc<ClientConfig>>,
    server_name: ServerName<'static>,
    host: String,
    /// Where trusted CAs come from, for error messages.
    roots: String,
    has_client_cert: bool,
    /// Last state logged per connection kind: 0 nothing yet, 1 plaintext, 2 TLS.
    logged: Arc<[AtomicU8; 2]>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("mode", &self.mode)
            .field("verification", &self.verification)
            .field("roots", &self.roots)
            .field("client_cert", &self.has_client_cert)
            .finish_non_exhaustive()
    }
}

/// The connection kinds, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Sql,
    Replication,
}

impl ConnectionKind {
    fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Sql => "sql",
            ConnectionKind::Replication => "replication",
        }
    }
}

/// What a handshake agreed on.
#[derive(Debug, Clone)]
pub struct Negotiated {
    pub protocol: String,
    pub cipher: String,
}

impl Negotiated {
    fn of(conn: &ClientConnection) -> Negotiated {
        Negotiated {
            protocol: conn
                .protocol_version()
                .map_or_else(|| "unknown".to_owned(), |v| format!("{v:?}")),
            cipher: conn
                .negotiated_cipher_suite()
                .map_or_else(|| "unknown".to_owned(), |s| format!("{:?}", s.suite())),
        }
    }
}

impl TlsSettings {
    /// Reads and checks the files and builds the rustls configuration; problems go to
    /// `errors` under the field they come from.
    pub fn build(
        mode: SslMode,
        host: &str,
        files: TlsFiles<'_>,
        errors: &mut ConfigErrors,
    ) -> TlsSettings {
        let verification = match mode {
            SslMode::Disable => Verification::None,
            SslMode::VerifyFull => Verification::Full,
            SslMode::VerifyCa => Verification::Chain,
            // libpq checks the chain whenever a root certificate is given.
            SslMode::Allow | SslMode::Prefer | SslMode::Require if files.rootcert.is_some() => {
                Verification::Chain
            }
            SslMode::Allow | SslMode::Prefer | SslMode::Require => Verification::None,
        };
        let server_name = match ServerName::try_from(host.to_owned()) {
            Ok(name) => name,
            Err(_) => {
                if mode == SslMode::VerifyFull {
                    errors.push(
                        "database.hostname",
                        format!(
                            "{host:?} is not a DNS name or IP address, so database.sslmode=verify-full cannot check the server certificate against it; use the name the certificate lists, or database.sslmode=verify-ca with database.sslrootcert"
                        ),
                    );
                }
                // Sends no SNI; the name is not checked in the other modes.
                ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into())
            }
        };
        let mut settings = TlsSettings {
            mode,
            verification,
            client: None,
            server_name,
            host: host.to_owned(),
            roots: String::new(),
            has_client_cert: false,
            logged: Arc::new([AtomicU8::new(0), AtomicU8::new(0)]),
        };
        if mode == SslMode::Disable {
            return settings;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Option<Arc<dyn ServerCertVerifier>> = match verification {
            Verification::None => Some(Arc::new(AcceptAnyCertificate {
                provider: provider.clone(),
            })),
            Verification::Chain | Verification::Full => {
                let roots = match (files.rootcert, verification) {
                    (Some(path), _) => {
                        settings.roots = format!("database.sslrootcert {path}");
                        load_roots(path, errors)
                    }
                    // The host name is checked, so the system's (public) CAs are safe to use.
                    (None, Verification::Full) => {
                        settings.roots = "the system trust store".to_owned();
                        system_roots(mode, errors)
                    }
                    // The chain alone (verify-ca): never against public CAs, which would let
                    // any certificate they issued, for any domain, pass. libpq refuses it too.
                    (None, _) => {
                        errors.push(
                            "database.sslrootcert",
                            format!(
                                "is required with database.sslmode={}: verify-ca checks that the server certificate chains to a trusted CA but not the host name, so with the system's public CAs any certificate they issued, for any domain, would pass; set database.sslrootcert to the PEM file of the CA that signed the server certificate, or use database.sslmode=verify-full",
                                mode.as_str()
                            ),
                        );
                        None
                    }
                };
                roots.and_then(|roots| {
                    match WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider.clone(),
                    )
                    .build()
                    {
                        Ok(webpki) if verification == Verification::Full => {
                            Some(webpki as Arc<dyn ServerCertVerifier>)
                        }
                        Ok(webpki) => Some(Arc::new(ChainOnly(webpki))),
                        Err(e) => {
                            errors.push(
                                "database.sslrootcert",
                                format!("no usable CA certificate: {e}"),
                            );
                            None
                        }
                    }
                })
            }
        };
        let identity = match (files.cert, files.key) {
            (None, None) => None,
            (Some(_), None) => {
                errors.push(
                    "database.sslkey",
                    "is required with database.sslcert (the client certificate's private key)",
                );
                None
            }
            (None, Some(_)) => {
                errors.push(
                    "database.sslcert",
                    "is required with database.sslkey (the client certificate)",
                );
                None
            }
            (Some(cert), Some(key)) => {
                match (load_cert_chain(cert, errors), load_key(key, errors)) {
                    (Some(chain), Some(key)) => Some((chain, key)),
                    _ => None,
                }
            }
        };
        let Some(verifier) = verifier else {
            return settings;
        };
        let builder = match ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b,
            Err(e) => {
                errors.push("database.sslmode", format!("cannot set up TLS: {e}"));
                return settings;
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut client = match identity {
            None if files.cert.is_some() || files.key.is_some() => return settings,
            None => builder.with_no_client_auth(),
            Some((chain, key)) => match builder.with_client_auth_cert(chain, key) {
                Ok(c) => {
                    settings.has_client_cert = true;
                    c
                }
                Err(rustls::Error::InconsistentKeys(e)) => {
                    errors.push(
                        "database.sslkey",
                        format!("does not go with the certificate in database.sslcert ({e:?})"),
                    );
                    return settings;
                }
                Err(
                    e @ (rustls::Error::InvalidCertificate(_)
                    | rustls::Error::InvalidCertRevocationList(_)),
                ) => {
                    errors.push(
                        "database.sslcert",
                        format!("not a certificate rustls can use: {e}"),
                    );
                    return settings;
                }
                Err(e) => {
                    errors.push(
                        "database.sslkey",
                        format!("not a private key rustls can use: {e}"),
                    );
                    return settings;
                }
            },
        };
        // What libpq 17 sends; the server accepts it with SSLRequest negotiation too.
        client.alpn_protocols = vec![b"postgresql".to_vec()];
        settings.client = Some(Arc::new(client));
        settings
    }

    /// The rustls configuration for a connection: `None` with `database.sslmode=disable`. In
    /// any other mode a missing one (only a config that failed validation lacks it) is an
    /// error, never a plaintext connection.
    fn client_config(&self, what: &str) -> Result<Option<Arc<ClientConfig>>, PgError> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        match &self.client {
            Some(client) => Ok(Some(client.clone())),
            None => Err(PgError::Tls {
                what: what.to_owned(),
                message: format!(
                    "database.sslmode={} asks for TLS but TLS is not set up (the configuration did not validate); refusing to connect without encryption",
                    self.mode.as_str()
                ),
            }),
        }
    }

    /// Where trusted CA certificates come from (empty when nothing is verified).
    pub fn trust_source(&self) -> &str {
        &self.roots
    }

    /// True when a client certificate is configured.
    pub fn has_client_certificate(&self) -> bool {
        self.has_client_cert
    }

    /// Notes how a connection of `kind` came out: info the first time and on a change,
    /// debug otherwise.
    pub(crate) fn report(&self, kind: ConnectionKind, negotiated: Option<&Negotiated>) {
        let state = if negotiated.is_some() { 2 } else { 1 };
        let previous = self.logged[kind as usize].swap(state, Ordering::Relaxed);
        let connection = kind.as_str();
        let sslmode = self.mode.as_str();
        match negotiated {
            Some(n) if previous != state => info!(
                connection,
                sslmode,
                protocol = %n.protocol,
                cipher = %n.cipher,
                verification = self.verification.as_str(),
                client_certificate = self.has_client_cert,
                "postgres connection encrypted with TLS"
            ),
            Some(n) => debug!(
                connection,
                protocol = %n.protocol,
                "postgres connection encrypted with TLS"
            ),
            None if previous == state => {
                debug!(connection, sslmode, "postgres connection not encrypted")
            }
            None if self.mode == SslMode::Disable => info!(
                connection,
                sslmode, "postgres connection not encrypted (database.sslmode=disable)"
            ),
            None => warn!(
                connection,
                sslmode,
                "postgres connection not encrypted: the server does not accept TLS; set database.sslmode=require or stronger to refuse plaintext"
            ),
        }
    }

    /// The message for a handshake failure, with what to do about it.
    fn handshake_message(&self, err: &rustls::Error) -> String {
        let sslmode = self.mode.as_str();
        let fix = match err {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "the server's certificate is not signed by a CA in {}; set database.sslrootcert to the PEM file of the CA that signed it",
                self.roots
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "the server's certificate is not valid for {:?} (database.hostname); connect with a name or IP address the certificate lists, or use database.sslmode=verify-ca{} to check the chain only",
                self.host,
                if self.roots.starts_with("database.sslrootcert") {
                    ""
                } else {
                    " with database.sslrootcert set to the CA that signed it"
                }
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            ) => "the server's certificate is expired or not valid yet".to_owned(),
            rustls::Error::InvalidCertificate(_) => {
                format!("the server's certificate was refused ({})", self.roots)
            }
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired)
            | rustls::Error::AlertReceived(AlertDescription::HandshakeFailure)
                if !self.has_client_cert =>
            {
                "the server may require a client certificate; set database.sslcert and database.sslkey".to_owned()
            }
            rustls::Error::AlertReceived(
                AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::AccessDenied,
            ) if self.has_client_cert => {
                "the server did not accept the client certificate in database.sslcert".to_owned()
            }
            _ => "the TLS handshake failed".to_owned(),
        };
        format!("{fix} (database.sslmode={sslmode}: {err})")
    }
}

/// The PEM CA certificates of `database.sslrootcert`.
fn load_roots(path: &str, errors: &mut ConfigErrors) -> Option<RootCertStore> {
    const FIELD: &str = "database.sslrootcert";
    let bytes = read_file(FIELD, path, errors)?;
    let certs = match CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
        Ok(certs) => certs,
        Err(e) => {
            errors.push(
                FIELD,
                format!("{path} is not a PEM file of certificates: {e}"),
            );
            return None;
        }
    };
    if certs.is_empty() {
        errors.push(
            FIELD,
            format!("{path} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"),
        );
        return None;
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        if let Err(e) = roots.add(cert) {
            errors.push(FIELD, format!("{path}: not a usable CA certificate: {e}"));
            return None;
        }
    }
    Some(roots)
}

/// The system's trusted CAs, for `verify-full` without `database.sslrootcert` (never for
/// `verify-ca`, which does not check the name).
fn system_roots(mode: SslMode, errors: &mut ConfigErrors) -> Option<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        errors.push(
            "database.sslrootcert",
            format!(
                "is required with database.sslmode={}: the system trust store has no CA certificates{why}; set database.sslrootcert to the PEM file of the CA that signed the server certificate",
                mode.as_str()
            ),
        );
        return None;
    }
    Some(roots)
}

/// The client certificate chain of `database.sslcert` (PEM, or one DER certificate).
fn load_cert_chain(path: &str, errors: &mut ConfigErrors) -> Option<Vec<CertificateDer<'static>>> {
    const FIELD: &str = "database.sslcert";
    let bytes = read_file(FIELD, path, errors)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default();
    if !certs.is_empty() {
        return Some(certs);
    }
    if bytes.first() == Some(&0x30) {
        // DER, as pgjdbc's postgresql.crt may be.
        return Some(vec![CertificateDer::from(bytes)]);
    }
    errors.push(
        FIELD,
        format!("{path} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"),
    );
    None
}

/// The client key of `database.sslkey`: PEM (PKCS#8, PKCS#1 or SEC1), or DER PKCS#8 as
/// pgjdbc's `postgresql.pk8`. Encrypted keys are refused.
fn load_key(path: &str, errors: &mut ConfigErrors) -> Option<PrivateKeyDer<'static>> {
    const FIELD: &str = "database.sslkey";
    let bytes = read_file(FIELD, path, errors)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        errors.push(
            FIELD,
            format!(
                "{path} is encrypted, and encrypted keys are not supported (database.sslpassword is not used); decrypt it with `openssl pkey -in {path} -out client.key` and set database.sslkey to the result"
            ),
        );
        return None;
    }
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Some(key),
        Err(_) if bytes.first() == Some(&0x30) => {
            Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(bytes)))
        }
        Err(e) => {
            errors.push(
                FIELD,
                format!(
                    "{path} holds no private key (expected PEM -----BEGIN PRIVATE KEY-----, RSA or EC PRIVATE KEY, or DER PKCS#8): {e}"
                ),
            );
            None
        }
    }
}

fn read_file(field: &'static str, path: &str, errors: &mut ConfigErrors) -> Option<Vec<u8>> {
    match std::fs::read(Path::new(path)) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            errors.push(field, format!("cannot read {path}: {e}"));
            None
        }
    }
}

/// `require`/`prefer` without a root certificate: encryption without authentication of the
/// server (libpq's behaviour). The handshake signature is still checked, so the peer holds
/// the key of the certificate it sent (which channel binding relies on).
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the webpki verifier, minus the name check. webpki checks the chain before the
/// name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `tls-server-end-point` channel binding data (RFC 5929 section 4.1): the hash of the
/// server's DER certificate, with the hash function of its signature algorithm (SHA-256 for
/// MD5 and SHA-1). `None` for other algorithms (Ed25519, RSA-PSS), for which the server
/// cannot compute it either; SCRAM then runs without channel binding.
pub fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    const RSA: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (certificate, _) = der::expect(cert, 0x30)?;
    let (_tbs, rest) = der::expect(certificate, 0x30)?;
    let (algorithm, _) = der::expect(rest, 0x30)?;
    let (oid, _) = der::expect(algorithm, 0x06)?;
    let bits = match oid.split_last() {
        // md5, sha1, sha256 WithRSAEncryption; ecdsa-with-SHA1, -SHA256.
        Some((&(4 | 5 | 11), prefix)) if prefix == RSA => 256,
        Some((&2, prefix)) if prefix == ECDSA_SHA2 => 256,
        _ if oid == ECDSA_SHA1 => 256,
        Some((&12, prefix)) if prefix == RSA => 384,
        Some((&3, prefix)) if prefix == ECDSA_SHA2 => 384,
        Some((&13, prefix)) if prefix == RSA => 512,
        Some((&4, prefix)) if prefix == ECDSA_SHA2 => 512,
        _ => return None,
    };
    Some(match bits {
        256 => Sha256::digest(cert).to_vec(),
        384 => Sha384::digest(cert).to_vec(),
        _ => Sha512::digest(cert).to_vec(),
    })
}

/// The channel binding data of an established TLS connection.
fn channel_binding_of(conn: &ClientConnection) -> Option<Vec<u8>> {
    conn.peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| tls_server_end_point(cert))
}

/// If the server refused a plaintext connection (pg_hba.conf `hostssl`, or `hostnossl ...
/// reject`), what to do about it.
pub(crate) fn plaintext_refused(message: &str) -> Option<String> {
    let refused = message.contains("pg_hba.conf")
        && (message.contains("no encryption") || message.contains("SSL off"));
    refused.then(|| {
        format!(
            "the server refuses unencrypted connections for this user ({message}); set database.sslmode to require, verify-ca or verify-full (or prefer)"
        )
    })
}

// ---- the replication connection ------------------------------------------------------------

/// The read side of a replication connection: the socket's own half for plaintext (no lock on
/// the hot path), a `tokio::io::split` half of the TLS stream otherwise.
pub(crate) enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The write side of a replication connection.
pub(crate) enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// A connected socket, encrypted as the settings say.
pub(crate) struct Negotiation {
    pub read: ReadHalf,
    pub write: WriteHalf,
    /// `tls-server-end-point` data when encrypted and the certificate allows it.
    pub channel_binding: Option<Vec<u8>>,
    pub encrypted: bool,
}

/// Connects to `host:port` and negotiates TLS (SSLRequest, then the handshake) before the
/// startup message.
pub(crate) async fn connect(
    settings: &TlsSettings,
    host: &str,
    port: u16,
) -> Result<Negotiation, PgError> {
    let what = format!("postgres at {host}:{port}");
    let client = settings.client_config(&what)?;
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| PgError::io(what.clone(), e))?;
    stream
        .set_nodelay(true)
        .map_err(|e| PgError::io(what.clone(), e))?;
    let Some(client) = client else {
        return Ok(plaintext(settings, stream));
    };
    let mut request = bytes::BytesMut::with_capacity(8);
    frontend::ssl_request(&mut request);
    stream
        .write_all(&request)
        .await
        .map_err(|e| PgError::io(what.clone(), e))?;
    // Exactly one byte: anything the server sent after it must come through TLS
    // (CVE-2021-23222).
    let answer = stream
        .read_u8()
        .await
        .map_err(|e| PgError::io(what.clone(), e))?;
    match answer {
        b'S' => {}
        b'N' if matches!(settings.mode, SslMode::Allow | SslMode::Prefer) => {
            return Ok(plaintext(settings, stream));
        }
        b'N' => {
            return Err(PgError::Tls {
                what,
                message: server_without_tls(settings.mode),
            });
        }
        other => {
            return Err(PgError::Protocol(format!(
                "unexpected answer {:?} to SSLRequest from {what}",
                other as char
            )));
        }
    }
    let tls = TlsConnector::from(client)
        .connect(settings.server_name.clone(), stream)
        .await
        .map_err(|e| handshake_error(settings, &what, e))?;
    let (_, conn) = tls.get_ref();
    let channel_binding = channel_binding_of(conn);
    settings.report(ConnectionKind::Replication, Some(&Negotiated::of(conn)));
    let (read, write) = tokio::io::split(tls);
    Ok(Negotiation {
        read: ReadHalf::Tls(read),
        write: WriteHalf::Tls(write),
        channel_binding,
        encrypted: true,
    })
}

fn plaintext(settings: &TlsSettings, stream: TcpStream) -> Negotiation {
    settings.report(ConnectionKind::Replication, None);
    let (read, write) = stream.into_split();
    Negotiation {
        read: ReadHalf::Plain(read),
        write: WriteHalf::Plain(write),
        channel_binding: None,
        encrypted: false,
    }
}

fn server_without_tls(mode: SslMode) -> String {
    format!(
        "the server does not accept TLS connections (it answered N to SSLRequest) but database.sslmode={} requires TLS; turn ssl on in the server's postgresql.conf, or set database.sslmode=prefer",
        mode.as_str()
    )
}

/// A failed handshake: definite when rustls refused (certificate, alert), transient for
/// network trouble.
fn handshake_error(settings: &TlsSettings, what: &str, err: io::Error) -> PgError {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => PgError::Tls {
            what: what.to_owned(),
            message: settings.handshake_message(tls),
        },
        None => PgError::io(format!("{what} (TLS handshake)"), err),
    }
}

// ---- tokio-postgres ------------------------------------------------------------------------

/// tokio-postgres's TLS hook over the same settings. tokio-postgres sends the SSLRequest
/// itself (`prefer` or `require`, from [`TlsSettings::sql_ssl_mode`]) and calls this for the
/// handshake.
pub(crate) struct MakeRustlsConnect {
    settings: TlsSettings,
    client: Arc<ClientConfig>,
    /// Set when a handshake succeeded: the connection is encrypted.
    pub negotiated: Arc<Mutex<Option<Negotiated>>>,
}

impl TlsSettings {
    /// The hook for a tokio-postgres connection to `what`, `None` with
    /// `database.sslmode=disable` (an error in other modes when TLS is not set up).
    pub(crate) fn make_tls_connect(
        &self,
        what: &str,
    ) -> Result<Option<MakeRustlsConnect>, PgError> {
        Ok(self.client_config(what)?.map(|client| MakeRustlsConnect {
            settings: self.clone(),
            client,
            negotiated: Arc::new(Mutex::new(None)),
        }))
    }

    /// tokio-postgres's mode: it knows disable, prefer and require; verification is ours.
    pub(crate) fn sql_ssl_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }

    /// A tokio-postgres connect error, with the TLS reason and fix when TLS was the problem.
    pub(crate) fn sql_connect_error(
        &self,
        what: &str,
        err: &tokio_postgres::Error,
    ) -> Option<PgError> {
        let source = std::error::Error::source(err);
        if let Some(handshake) = source.and_then(|s| s.downcast_ref::<HandshakeError>()) {
            return handshake.definite.then(|| PgError::Tls {
                what: what.to_owned(),
                message: handshake.message.clone(),
            });
        }
        if source.is_some_and(|s| s.to_string() == "server does not support TLS") {
            return Some(PgError::Tls {
                what: what.to_owned(),
                message: server_without_tls(self.mode),
            });
        }
        let db = err.as_db_error()?;
        plaintext_refused(db.message()).map(|message| PgError::Tls {
            what: what.to_owned(),
            message,
        })
    }
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = std::convert::Infallible;

    fn make_tls_connect(&mut self, _domain: &str) -> Result<RustlsConnect, Self::Error> {
        // The domain is database.hostname, already in the settings' server name.
        Ok(RustlsConnect {
            settings: self.settings.clone(),
            client: self.client.clone(),
            negotiated: self.negotiated.clone(),
        })
    }
}

/// One handshake of a tokio-postgres connection.
pub(crate) struct RustlsConnect {
    settings: TlsSettings,
    client: Arc<ClientConfig>,
    negotiated: Arc<Mutex<Option<Negotiated>>>,
}

/// A handshake that failed; `definite` when rustls refused (not a network error).
#[derive(Debug)]
pub(crate) struct HandshakeError {
    message: String,
    definite: bool,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandshakeError {}

impl<S> tokio_postgres::tls::TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, HandshakeError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = TlsConnector::from(self.client)
                .connect(self.settings.server_name.clone(), stream)
                .await
                .map_err(|e| {
                    match e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    {
                        Some(tls) => HandshakeError {
                            message: self.settings.handshake_message(tls),
                            definite: true,
                        },
                        None => HandshakeError {
                            message: format!("TLS handshake: {e}"),
                            definite: false,
                        },
                    }
                })?;
            let (_, conn) = tls.get_ref();
            let channel_binding = channel_binding_of(conn);
            if let Ok(mut slot) = self.negotiated.lock() {
                *slot = Some(Negotiated::of(conn));
            }
            Ok(RustlsStream {
                inner: tls,
                channel_binding,
            })
        })
    }
}

/// An encrypted tokio-postgres connection.
pub(crate) struct RustlsStream<S> {
    inner: TlsStream<S>,
    channel_binding: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        match &self.channel_binding {
            Some(data) => tokio_postgres::tls::ChannelBinding::tls_server_end_point(data.clone()),
            None => tokio_postgres::tls::ChannelBinding::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_refusal_is_recognised() {
        let m = "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"cdc_tls\", database \"x\", no encryption";
        let fix = plaintext_refused(m).expect("recognised");
        assert!(fix.contains("database.sslmode"), "{fix}");
        assert!(plaintext_refused("password authentication failed for user \"x\"").is_none());
    }

    #[test]
    fn channel_binding_hashes_with_the_signature_hash() {
        // An ecdsa-with-SHA256 certificate: SHA-256 of its DER.
        let pem = include_bytes!("../testdata/tls/client.pem");
        let der = CertificateDer::from_pem_slice(pem).expect("fixture certificate");
        let binding = tls_server_end_point(&der).expect("binding data");
        assert_eq!(binding, Sha256::digest(&der).to_vec());
        assert_eq!(binding.len(), 32);
        // Not a certificate: no binding rather than a wrong one.
        assert_eq!(tls_server_end_point(&der[..20]), None);
        assert_eq!(tls_server_end_point(b"\x30\x03\x02\x01\x01"), None);
    }

    #[tokio::test]
    async fn tls_modes_never_fall_back_to_plaintext_without_a_tls_setup() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        for mode in [
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            // An unreadable root certificate: the config is refused and no TLS client is
            // built. Should such settings be used anyway, nothing connects in plaintext.
            let mut errors = ConfigErrors::default();
            let settings = TlsSettings::build(
                mode,
                "127.0.0.1",
                TlsFiles {
                    rootcert: Some("/nonexistent/root.crt"),
                    ..TlsFiles::default()
                },
                &mut errors,
            );
            assert!(!errors.0.is_empty(), "{mode:?}");
            let err = connect(&settings, "127.0.0.1", port)
                .await
                .err()
                .unwrap_or_else(|| panic!("{mode:?}: replication connection refused"));
            assert!(
                matches!(&err, PgError::Tls { message, .. }
                    if message.contains("refusing to connect without encryption")),
                "{mode:?}: {err}"
            );
            let err = settings
                .make_tls_connect("postgres at 127.0.0.1")
                .err()
                .unwrap_or_else(|| panic!("{mode:?}: SQL connection refused"));
            assert!(matches!(err, PgError::Tls { .. }), "{mode:?}: {err}");
        }
        let accepted =
            tokio::time::timeout(std::time::Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "no connection was opened");

        // disable: plaintext, as asked.
        let mut errors = ConfigErrors::default();
        let settings = TlsSettings::build(
            SslMode::Disable,
            "127.0.0.1",
            TlsFiles::default(),
            &mut errors,
        );
        assert!(errors.0.is_empty(), "{errors}");
        assert!(matches!(settings.make_tls_connect("x"), Ok(None)));
        let negotiated = connect(&settings, "127.0.0.1", port)
            .await
            .unwrap_or_else(|e| panic!("disable: {e}"));
        assert!(!negotiated.encrypted);
    }
}
