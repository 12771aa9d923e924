//! A small client for the streaming replication protocol (CopyBoth), on `postgres-protocol`.
//!
//! tokio-postgres has no replication support, so this module speaks just enough of the
//! protocol itself: startup with `replication=database`, password/MD5/SCRAM-SHA-256
//! authentication, simple queries (`CREATE_REPLICATION_SLOT`, `IDENTIFY_SYSTEM`), and
//! `START_REPLICATION ... LOGICAL` followed by the CopyBoth stream of `XLogData` and
//! keepalive messages, answered with standby status updates. TLS is negotiated before the
//! startup message as `database.sslmode` says ([`crate::tls`]); with TLS, SCRAM uses
//! `SCRAM-SHA-256-PLUS` (channel binding) when the server offers it. A SCRAM exchange must end
//! with the server's final message, whose signature is checked, before AuthenticationOk is
//! accepted. Channel binding protects only SCRAM: a server asking for a cleartext or MD5
//! password still gets it (as with libpq's default `channel_binding=prefer`; see
//! [`crate::tls`]).
//! See <https://www.postgresql.org/docs/15/protocol-replication.html>.
//!
//! Session settings are pinned at startup (`DateStyle=ISO`, `TimeZone=UTC`,
//! `IntervalStyle=postgres`, `extra_float_digits=3`): pgoutput prints values with the
//! walsender's output functions, so the text the decoder parses is always in one format.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{
    ChannelBinding, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, ScramSha256,
};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::PgError;
use crate::tls::{self, ReadHalf, TlsSettings, WriteHalf};

/// A WAL position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl Lsn {
    /// Parses `16/B374D848`.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some(Lsn((hi << 32) | lo))
    }
}

/// Where and as whom to connect.
#[derive(Clone)]
pub struct ConnectParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub application_name: String,
    /// `database.sslmode` and its files.
    pub tls: TlsSettings,
}

impl fmt::Debug for ConnectParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("sslmode", &self.tls.mode)
            .finish_non_exhaustive()
    }
}

/// Session settings pinned on every connection (replication and SQL).
pub const PINNED_SETTINGS: [(&str, &str); 6] = [
    ("bytea_output", "hex"),
    ("DateStyle", "ISO, MDY"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("client_encoding", "UTF8"),
];

/// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

fn now_pg_micros() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    unix - PG_EPOCH_OFFSET_MICROS
}

/// Reads backend messages (tag, body) from a byte stream.
struct FrameReader<R> {
    io: R,
    buf: BytesMut,
}

impl<R: tokio::io::AsyncRead + Unpin> FrameReader<R> {
    async fn next(&mut self) -> Result<(u8, Bytes), PgError> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if len < 4 {
                    return Err(PgError::Protocol(format!("message length {len} below 4")));
                }
                if self.buf.len() > len {
                    let mut frame = self.buf.split_to(len + 1);
                    let tag = frame[0];
                    frame.advance(5);
                    return Ok((tag, frame.freeze()));
                }
                self.buf.reserve(len + 1 - self.buf.len());
            }
            if self.buf.capacity() - self.buf.len() < 8192 {
                self.buf.reserve(256 * 1024);
            }
            let n = self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| PgError::io("postgres replication connection", e))?;
            if n == 0 {
                return Err(PgError::io(
                    "postgres replication connection",
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    ),
                ));
            }
        }
    }
}

/// Parses an ErrorResponse/NoticeResponse body into (SQLSTATE, message).
fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = String::new();
    let mut hint = String::new();
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let text = String::from_utf8_lossy(&tail[..end]).into_owned();
        match kind {
            b'C' => code = text,
            b'M' => message = text,
            b'D' => detail = text,
            b'H' => hint = text,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    if !detail.is_empty() {
        message = format!("{message} ({detail})");
    }
    if !hint.is_empty() {
        message = format!("{message}; hint: {hint}");
    }
    (code, message)
}

/// A replication connection before streaming starts.
pub struct ReplicationConnection {
    reader: FrameReader<ReadHalf>,
    writer: WriteHalf,
    out: BytesMut,
    /// `tls-server-end-point` data of the TLS session, for SCRAM-SHA-256-PLUS.
    channel_binding: Option<Vec<u8>>,
    encrypted: bool,
}

/// One row of a simple query result: text values, `None` for NULL.
pub type TextRow = Vec<Option<String>>;

/// `CREATE_REPLICATION_SLOT` result.
#[derive(Debug, Clone)]
pub struct CreatedSlot {
    pub consistent_point: Lsn,
    pub snapshot_name: Option<String>,
}

impl ReplicationConnection {
    /// Connects (with TLS as `database.sslmode` says) and authenticates with
    /// `replication=database`.
    pub async fn connect(params: &ConnectParams) -> Result<Self, PgError> {
        let negotiated = tls::connect(&params.tls, &params.host, params.port).await?;
        let mut conn = ReplicationConnection {
            reader: FrameReader {
                io: negotiated.read,
                buf: BytesMut::with_capacity(256 * 1024),
            },
            writer: negotiated.write,
            out: BytesMut::new(),
            channel_binding: negotiated.channel_binding,
            encrypted: negotiated.encrypted,
        };
        let mut startup: Vec<(&str, &str)> = vec![
            ("user", params.user.as_str()),
            ("database", params.dbname.as_str()),
            ("replication", "database"),
            ("application_name", params.application_name.as_str()),
        ];
        startup.extend(PINNED_SETTINGS);
        frontend::startup_message(startup.iter().copied(), &mut conn.out)
            .map_err(|e| PgError::Protocol(e.to_string()))?;
        conn.flush().await?;
        conn.authenticate(params).await?;
        // Parameter status, backend key data, then ReadyForQuery.
        loop {
            let (tag, body) = conn.reader.next().await?;
            match tag {
                b'Z' => return Ok(conn),
                b'E' => {
                    let (code, message) = error_fields(&body);
                    return Err(PgError::Server {
                        code,
                        message,
                        context: "replication connection startup".into(),
                    });
                }
                _ => {}
            }
        }
    }

    /// True when the connection is encrypted with TLS.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    async fn flush(&mut self) -> Result<(), PgError> {
        let data = self.out.split().freeze();
        write_flushed(&mut self.writer, &data).await
    }

    async fn authenticate(&mut self, params: &ConnectParams) -> Result<(), PgError> {
        let auth_err = |message: String| PgError::Auth {
            user: params.user.clone(),
            message,
        };
        let password = || {
            params.password.clone().ok_or_else(|| PgError::Auth {
                user: params.user.clone(),
                message: "the server asks for a password; set database.password".into(),
            })
        };
        let mut scram: Option<ScramSha256> = None;
        // The server's SCRAM signature was verified (AuthenticationSASLFinal).
        let mut scram_verified = false;
        loop {
            let (tag, mut body) = self.reader.next().await?;
            match tag {
                b'R' => {}
                b'E' => {
                    let (code, message) = error_fields(&body);
                    if !self.encrypted
                        && let Some(fix) = tls::plaintext_refused(&message)
                    {
                        return Err(PgError::Tls {
                            what: format!("postgres at {}:{}", params.host, params.port),
                            message: fix,
                        });
                    }
                    return Err(if code == "28P01" || code == "28000" {
                        auth_err(message)
                    } else {
                        PgError::Server {
                            code,
                            message,
                            context: "authentication".into(),
                        }
                    });
                }
                other => {
                    return Err(PgError::Protocol(format!(
                        "unexpected message {:?} during authentication",
                        other as char
                    )));
                }
            }
            if body.len() < 4 {
                return Err(PgError::Protocol("short authentication message".into()));
            }
            let code = body.get_u32();
            // Once SCRAM has started, only its own messages may follow: AuthenticationOk before
            // the server proved it knows the password (SASL final) would skip the server's
            // authentication and channel binding, and a switch to cleartext or MD5 would hand
            // the password over.
            if scram.is_some() && !scram_verified && !matches!(code, 11 | 12) {
                return Err(auth_err(if code == 0 {
                    "the server sent AuthenticationOk before the SCRAM exchange completed \
                     (no AuthenticationSASLFinal), so it never proved it holds the password's \
                     SCRAM secret; refusing the connection (a man in the middle or a broken proxy)"
                        .into()
                } else {
                    format!(
                        "the server asked for authentication method {code} in the middle of the \
                         SCRAM exchange; refusing (a man in the middle or a broken proxy)"
                    )
                }));
            }
            match code {
                0 => return Ok(()),
                3 => {
                    let pw = password()?;
                    frontend::password_message(pw.as_bytes(), &mut self.out)
                        .map_err(|e| PgError::Protocol(e.to_string()))?;
                    self.flush().await?;
                }
                5 => {
                    let pw = password()?;
                    if body.len() < 4 {
                        return Err(PgError::Protocol("short MD5 salt".into()));
                    }
                    let salt = [body[0], body[1], body[2], body[3]];
                    let hash = postgres_protocol::authentication::md5_hash(
                        params.user.as_bytes(),
                        pw.as_bytes(),
                        salt,
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.out)
                        .map_err(|e| PgError::Protocol(e.to_string()))?;
                    self.flush().await?;
                }
                10 => {
                    let mechanisms: Vec<&[u8]> =
                        body.split(|&b| b == 0).filter(|m| !m.is_empty()).collect();
                    let plus = mechanisms.contains(&SCRAM_SHA_256_PLUS.as_bytes());
                    if !plus && !mechanisms.contains(&SCRAM_SHA_256.as_bytes()) {
                        return Err(auth_err(
                            "the server offers no SASL mechanism this client supports (SCRAM-SHA-256)"
                                .into(),
                        ));
                    }
                    let pw = password()?;
                    // As libpq: bind to the TLS channel when both sides can; tell the server
                    // we could have when it did not offer it (so a downgrade is detected).
                    let (mechanism, binding) = match (plus, self.channel_binding.clone()) {
                        (true, Some(data)) => (
                            SCRAM_SHA_256_PLUS,
                            ChannelBinding::tls_server_end_point(data),
                        ),
                        (false, Some(_)) => (SCRAM_SHA_256, ChannelBinding::unrequested()),
                        (_, None) => (SCRAM_SHA_256, ChannelBinding::unsupported()),
                    };
                    let s = ScramSha256::new(pw.as_bytes(), binding);
                    frontend::sasl_initial_response(mechanism, s.message(), &mut self.out)
                        .map_err(|e| PgError::Protocol(e.to_string()))?;
                    self.flush().await?;
                    scram = Some(s);
                }
                11 => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| PgError::Protocol("SASL continue without start".into()))?;
                    s.update(&body).map_err(|e| auth_err(e.to_string()))?;
                    frontend::sasl_response(s.message(), &mut self.out)
                        .map_err(|e| PgError::Protocol(e.to_string()))?;
                    self.flush().await?;
                }
                12 => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| PgError::Protocol("SASL final without start".into()))?;
                    s.finish(&body).map_err(|e| auth_err(e.to_string()))?;
                    scram_verified = true;
                }
                other => {
                    return Err(auth_err(format!(
                        "authentication method {other} is not supported (use scram-sha-256, md5 or password in pg_hba.conf)"
                    )));
                }
            }
        }
    }

    /// Runs a simple-protocol command and returns its rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<TextRow>, PgError> {
        frontend::query(sql, &mut self.out).map_err(|e| PgError::Protocol(e.to_string()))?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = self.reader.next().await?;
            match tag {
                b'D' => rows.push(parse_data_row(&body)?),
                b'E' => {
                    let (code, message) = error_fields(&body);
                    error = Some(PgError::Server {
                        code,
                        message,
                        context: first_words(sql),
                    });
                }
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// `CREATE_REPLICATION_SLOT <slot> LOGICAL pgoutput`, exporting a snapshot when asked
    /// (the connection must then stay idle until the snapshot has been imported).
    pub async fn create_slot(&mut self, slot: &str, export: bool) -> Result<CreatedSlot, PgError> {
        let mode = if export {
            "EXPORT_SNAPSHOT"
        } else {
            "NOEXPORT_SNAPSHOT"
        };
        let rows = self
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {mode}",
                quote_ident(slot)
            ))
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| PgError::Protocol("CREATE_REPLICATION_SLOT returned no row".into()))?;
        let consistent_point = row
            .get(1)
            .and_then(|v| v.as_deref())
            .and_then(Lsn::parse)
            .ok_or_else(|| {
                PgError::Protocol("CREATE_REPLICATION_SLOT: no consistent point".into())
            })?;
        Ok(CreatedSlot {
            consistent_point,
            snapshot_name: row.get(2).cloned().flatten(),
        })
    }

    /// `START_REPLICATION SLOT ... LOGICAL <lsn> (proto_version '1', publication_names ...)`.
    pub async fn start_replication(
        mut self,
        slot: &str,
        start: Lsn,
        publication: &str,
    ) -> Result<ReplicationStream, PgError> {
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {start} (\"proto_version\" '1', \"publication_names\" {}, \"messages\" 'true')",
            quote_ident(slot),
            quote_literal(&quote_ident(publication)),
        );
        frontend::query(&sql, &mut self.out).map_err(|e| PgError::Protocol(e.to_string()))?;
        self.flush().await?;
        loop {
            let (tag, body) = self.reader.next().await?;
            match tag {
                b'W' => break,
                b'E' => {
                    let (code, message) = error_fields(&body);
                    return Err(PgError::Server {
                        code,
                        message,
                        context: "START_REPLICATION".into(),
                    });
                }
                _ => {}
            }
        }
        Ok(ReplicationStream {
            reader: self.reader,
            writer: StatusWriter {
                writer: self.writer,
                out: self.out,
            },
        })
    }

    pub async fn close(mut self) {
        frontend::terminate(&mut self.out);
        let _ = self.flush().await;
    }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn parse_data_row(body: &[u8]) -> Result<TextRow, PgError> {
    let short = || PgError::Protocol("truncated DataRow".into());
    let mut buf = body;
    if buf.len() < 2 {
        return Err(short());
    }
    let n = buf.get_u16() as usize;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        if buf.len() < 4 {
            return Err(short());
        }
        let len = buf.get_i32();
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        if buf.len() < len {
            return Err(short());
        }
        row.push(Some(String::from_utf8_lossy(&buf[..len]).into_owned()));
        buf.advance(len);
    }
    Ok(row)
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The CopyBoth stream after `START_REPLICATION`.
pub struct ReplicationStream {
    reader: FrameReader<ReadHalf>,
    writer: StatusWriter,
}

/// What arrives on the replication stream.
#[derive(Debug)]
pub enum StreamMessage {
    /// `XLogData`: a pgoutput message starting at `start`.
    XLogData { start: Lsn, end: Lsn, data: Bytes },
    /// Primary keepalive: the server's WAL end and whether it wants an answer now.
    Keepalive { wal_end: Lsn, reply_requested: bool },
}

/// Receives the stream.
pub struct StreamReader {
    reader: FrameReader<ReadHalf>,
}

/// Sends standby status updates.
pub struct StatusWriter {
    writer: WriteHalf,
    out: BytesMut,
}

impl ReplicationStream {
    pub fn split(self) -> (StreamReader, StatusWriter) {
        (
            StreamReader {
                reader: self.reader,
            },
            self.writer,
        )
    }
}

impl StreamReader {
    /// True when a complete message is already buffered (the next read will not wait).
    pub fn has_buffered_frame(&self) -> bool {
        let buf = &self.reader.buf;
        buf.len() >= 5 && {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            buf.len() > len
        }
    }

    /// The next message; an error when the server ends the stream or the connection drops.
    pub async fn next(&mut self) -> Result<StreamMessage, PgError> {
        loop {
            let (tag, mut body) = self.reader.next().await?;
            match tag {
                b'd' => {
                    if body.is_empty() {
                        continue;
                    }
                    let kind = body.get_u8();
                    match kind {
                        b'w' if body.len() >= 24 => {
                            let start = Lsn(body.get_u64());
                            let end = Lsn(body.get_u64());
                            let _ts = body.get_i64();
                            return Ok(StreamMessage::XLogData {
                                start,
                                end,
                                data: body,
                            });
                        }
                        b'k' if body.len() >= 17 => {
                            let wal_end = Lsn(body.get_u64());
                            let _ts = body.get_i64();
                            let reply_requested = body.get_u8() == 1;
                            return Ok(StreamMessage::Keepalive {
                                wal_end,
                                reply_requested,
                            });
                        }
                        other => {
                            return Err(PgError::Protocol(format!(
                                "unknown replication message {:?} of {} bytes",
                                other as char,
                                body.len()
                            )));
                        }
                    }
                }
                b'E' => {
                    let (code, message) = error_fields(&body);
                    return Err(PgError::Server {
                        code,
                        message,
                        context: "replication stream".into(),
                    });
                }
                b'c' => {
                    return Err(PgError::io(
                        "postgres replication stream",
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "server ended the replication stream (CopyDone)",
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
}

/// Writes `bytes` and flushes: over TLS a write may leave encrypted bytes buffered in the
/// session until a flush, and a standby status update that waits there can let the server's
/// `wal_sender_timeout` expire.
async fn write_flushed(writer: &mut WriteHalf, bytes: &[u8]) -> Result<(), PgError> {
    let io = |e| PgError::io("postgres replication connection", e);
    writer.write_all(bytes).await.map_err(io)?;
    writer.flush().await.map_err(io)
}

/// `wal_sender_timeout` as `SHOW` prints it (`60s`, `1min`, `500ms`, `0`); `None` when
/// disabled (0) or unreadable.
pub fn parse_pg_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    (ms > 0).then(|| std::time::Duration::from_millis(ms))
}

impl StatusWriter {
    /// Standby status update: `flushed` is reported as written, flushed and applied.
    pub async fn send_status(
        &mut self,
        flushed: Lsn,
        reply_requested: bool,
    ) -> Result<(), PgError> {
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(flushed.0);
        payload.put_u64(flushed.0);
        payload.put_u64(flushed.0);
        payload.put_i64(now_pg_micros());
        payload.put_u8(u8::from(reply_requested));
        let data = frontend::CopyData::new(payload.freeze())
            .map_err(|e| PgError::Protocol(e.to_string()))?;
        data.write(&mut self.out);
        let bytes = self.out.split().freeze();
        write_flushed(&mut self.writer, &bytes).await
    }

    /// Ends the stream politely.
    pub async fn close(mut self) {
        frontend::copy_done(&mut self.out);
        frontend::terminate(&mut self.out);
        let bytes = self.out.split().freeze();
        let _ = self.writer.write_all(&bytes).await;
        let _ = self.writer.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_sender_timeout_text() {
        use std::time::Duration;
        assert_eq!(parse_pg_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_pg_duration("1min"), Some(Duration::from_secs(60)));
        assert_eq!(parse_pg_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_pg_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_pg_duration("0"), None, "disabled");
        assert_eq!(parse_pg_duration("fast"), None);
    }

    #[test]
    fn lsn_round_trip() {
        let l = Lsn::parse("16/B374D848").expect("lsn");
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(Lsn::parse("0/0"), Some(Lsn(0)));
        assert_eq!(Lsn::parse("zz"), None);
    }

    #[test]
    fn error_fields_with_hint() {
        let body = b"SERROR\0C42704\0Mslot missing\0Hcreate it\0\0";
        let (code, msg) = error_fields(body);
        assert_eq!(code, "42704");
        assert_eq!(msg, "slot missing; hint: create it");
    }

    // --- authentication against a fake server ------------------------------------------

    /// What the fake server does after the client's SASLInitialResponse.
    #[derive(Debug, Clone, Copy)]
    enum AfterSaslStart {
        /// AuthenticationOk at once.
        Ok,
        /// SASL continue, then AuthenticationOk without SASL final.
        ContinueThenOk,
        /// SASL continue, then a SASL final with a wrong signature.
        ContinueThenBadFinal,
        /// A switch to a cleartext password.
        Cleartext,
    }

    fn auth_message(code: u32, data: &[u8]) -> Vec<u8> {
        let mut out = vec![b'R'];
        out.extend_from_slice(&(8 + data.len() as u32).to_be_bytes());
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    const READY_FOR_QUERY: &[u8] = &[b'Z', 0, 0, 0, 5, b'I'];

    /// Serves one connection: reads the startup message, then offers SCRAM-SHA-256 and goes on
    /// as `after` says (`None`: trust, AuthenticationOk at once); then ReadyForQuery.
    async fn fake_server(after: Option<AfterSaslStart>) -> u16 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        async fn read_message(sock: &mut tokio::net::TcpStream, tagged: bool) -> Vec<u8> {
            if tagged {
                sock.read_u8().await.expect("tag");
            }
            let len = sock.read_u32().await.expect("length") as usize;
            let mut body = vec![0; len - 4];
            sock.read_exact(&mut body).await.expect("body");
            body
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            read_message(&mut sock, false).await;
            let mut out = Vec::new();
            if let Some(after) = after {
                sock.write_all(&auth_message(10, b"SCRAM-SHA-256\0\0"))
                    .await
                    .expect("write");
                // SASLInitialResponse: mechanism, length, "n,,n=,r=<client nonce>".
                let body = read_message(&mut sock, true).await;
                let first =
                    String::from_utf8_lossy(&body[b"SCRAM-SHA-256\0".len() + 4..]).into_owned();
                let nonce = first.split_once("r=").expect("client nonce").1.to_owned();
                let server_first = format!("r={nonce}fakeserver,s=c2FsdA==,i=4096");
                match after {
                    AfterSaslStart::Ok => out.extend(auth_message(0, b"")),
                    AfterSaslStart::Cleartext => out.extend(auth_message(3, b"")),
                    AfterSaslStart::ContinueThenOk | AfterSaslStart::ContinueThenBadFinal => {
                        sock.write_all(&auth_message(11, server_first.as_bytes()))
                            .await
                            .expect("write");
                        read_message(&mut sock, true).await;
                        if let AfterSaslStart::ContinueThenBadFinal = after {
                            // A well-formed signature (32 bytes in base64) that is wrong.
                            let bad = format!("v={}=", "A".repeat(43));
                            out.extend(auth_message(12, bad.as_bytes()));
                        }
                        out.extend(auth_message(0, b""));
                    }
                }
            } else {
                out.extend(auth_message(0, b""));
            }
            out.extend_from_slice(READY_FOR_QUERY);
            // The client may hang up first.
            let _ = sock.write_all(&out).await;
            let _ = sock.read_u8().await;
        });
        port
    }

    fn fake_params(port: u16) -> ConnectParams {
        let mut errors = tributary_runtime::config::ConfigErrors::default();
        let tls = TlsSettings::build(
            crate::config::SslMode::Disable,
            "127.0.0.1",
            tls::TlsFiles::default(),
            &mut errors,
        );
        assert!(errors.0.is_empty(), "{errors}");
        ConnectParams {
            host: "127.0.0.1".into(),
            port,
            user: "cdc".into(),
            password: Some("secret".into()),
            dbname: "db".into(),
            application_name: "test".into(),
            tls,
        }
    }

    #[tokio::test]
    async fn scram_must_complete_before_authentication_ok() {
        for (after, needle) in [
            (
                AfterSaslStart::Ok,
                "AuthenticationOk before the SCRAM exchange completed",
            ),
            (
                AfterSaslStart::ContinueThenOk,
                "AuthenticationOk before the SCRAM exchange completed",
            ),
            (
                AfterSaslStart::Cleartext,
                "authentication method 3 in the middle of the SCRAM exchange",
            ),
            (
                AfterSaslStart::ContinueThenBadFinal,
                "SCRAM verification error",
            ),
        ] {
            let port = fake_server(Some(after)).await;
            let err = ReplicationConnection::connect(&fake_params(port))
                .await
                .err()
                .unwrap_or_else(|| panic!("{after:?}: the client must refuse"));
            assert!(
                matches!(&err, PgError::Auth { message, .. } if message.contains(needle)),
                "{after:?}: {err}"
            );
            assert_eq!(
                err.kind(),
                tributary_runtime::error::ErrorKind::Definite,
                "{after:?}"
            );
        }
    }

    #[tokio::test]
    async fn authentication_ok_without_a_password_request_is_accepted() {
        // trust in pg_hba.conf: AuthenticationOk straight away.
        let port = fake_server(None).await;
        let conn = ReplicationConnection::connect(&fake_params(port))
            .await
            .unwrap_or_else(|e| panic!("trust: {e}"));
        assert!(!conn.is_encrypted());
    }

    #[test]
    fn data_row() {
        let mut b = BytesMut::new();
        b.put_u16(2);
        b.put_i32(2);
        b.put_slice(b"ab");
        b.put_i32(-1);
        assert_eq!(
            parse_data_row(&b).expect("row"),
            vec![Some("ab".to_owned()), None]
        );
    }
}
