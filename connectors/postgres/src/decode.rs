//! pgoutput (protocol version 1) message decoding.
//!
//! See <https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html>.
//! Column values arrive as text (the type's output function); `schema.rs` turns them into
//! typed values. Text slices share the `XLogData` buffer (no copy).

use bytes::{Buf, Bytes};

use crate::error::PgError;
use crate::replication::Lsn;

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity key.
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// A Relation message: the table's columns as the publisher sees them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

/// One value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    Null,
    /// Unchanged TOAST value: not sent.
    Unchanged,
    Text(Bytes),
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgOutput {
    Begin {
        final_lsn: Lsn,
        /// Microseconds since 2000-01-01.
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_ts: i64,
    },
    Origin,
    Relation(Relation),
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Vec<TupleValue>,
    },
    Update {
        relation: u32,
        /// `K` (key columns only) or `O` (whole old row), when sent.
        old: Option<(u8, Vec<TupleValue>)>,
        new: Vec<TupleValue>,
    },
    Delete {
        relation: u32,
        kind: u8,
        old: Vec<TupleValue>,
    },
    Truncate {
        relations: Vec<u32>,
        cascade: bool,
        restart_identity: bool,
    },
    Message {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Bytes,
    },
}

fn short(what: &str) -> PgError {
    PgError::Protocol(format!("truncated pgoutput {what} message"))
}

fn need(buf: &Bytes, n: usize, what: &str) -> Result<(), PgError> {
    if buf.remaining() < n {
        Err(short(what))
    } else {
        Ok(())
    }
}

fn cstring(buf: &mut Bytes, what: &str) -> Result<String, PgError> {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| short(what))?;
    let s = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.advance(end + 1);
    Ok(s)
}

fn tuple(buf: &mut Bytes, what: &str) -> Result<Vec<TupleValue>, PgError> {
    need(buf, 2, what)?;
    let n = buf.get_i16().max(0) as usize;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        need(buf, 1, what)?;
        match buf.get_u8() {
            b'n' => values.push(TupleValue::Null),
            b'u' => values.push(TupleValue::Unchanged),
            b't' | b'b' => {
                need(buf, 4, what)?;
                let len = buf.get_i32().max(0) as usize;
                need(buf, len, what)?;
                values.push(TupleValue::Text(buf.split_to(len)));
            }
            other => {
                return Err(PgError::Protocol(format!(
                    "unknown tuple value kind {:?} in {what}",
                    other as char
                )));
            }
        }
    }
    Ok(values)
}

/// Decodes one pgoutput message (the payload of an `XLogData`).
pub fn decode(mut buf: Bytes) -> Result<PgOutput, PgError> {
    need(&buf, 1, "empty")?;
    let tag = buf.get_u8();
    Ok(match tag {
        b'B' => {
            need(&buf, 20, "Begin")?;
            PgOutput::Begin {
                final_lsn: Lsn(buf.get_u64()),
                commit_ts: buf.get_i64(),
                xid: buf.get_u32(),
            }
        }
        b'C' => {
            need(&buf, 25, "Commit")?;
            let _flags = buf.get_u8();
            PgOutput::Commit {
                commit_lsn: Lsn(buf.get_u64()),
                end_lsn: Lsn(buf.get_u64()),
                commit_ts: buf.get_i64(),
            }
        }
        b'O' => PgOutput::Origin,
        b'R' => {
            need(&buf, 4, "Relation")?;
            let oid = buf.get_u32();
            let namespace = cstring(&mut buf, "Relation")?;
            let name = cstring(&mut buf, "Relation")?;
            need(&buf, 3, "Relation")?;
            let replica_identity = buf.get_u8();
            let n = buf.get_i16().max(0) as usize;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                need(&buf, 1, "Relation")?;
                let flags = buf.get_u8();
                let name = cstring(&mut buf, "Relation")?;
                need(&buf, 8, "Relation")?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name,
                    type_oid: buf.get_u32(),
                    type_modifier: buf.get_i32(),
                });
            }
            PgOutput::Relation(Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => {
            need(&buf, 4, "Type")?;
            let oid = buf.get_u32();
            PgOutput::Type {
                oid,
                namespace: cstring(&mut buf, "Type")?,
                name: cstring(&mut buf, "Type")?,
            }
        }
        b'I' => {
            need(&buf, 5, "Insert")?;
            let relation = buf.get_u32();
            let _n = buf.get_u8();
            PgOutput::Insert {
                relation,
                new: tuple(&mut buf, "Insert")?,
            }
        }
        b'U' => {
            need(&buf, 5, "Update")?;
            let relation = buf.get_u32();
            let mut kind = buf.get_u8();
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some((kind, tuple(&mut buf, "Update")?));
                need(&buf, 1, "Update")?;
                kind = buf.get_u8();
            }
            if kind != b'N' {
                return Err(PgError::Protocol(format!(
                    "Update without new tuple (got {:?})",
                    kind as char
                )));
            }
            PgOutput::Update {
                relation,
                old,
                new: tuple(&mut buf, "Update")?,
            }
        }
        b'D' => {
            need(&buf, 5, "Delete")?;
            let relation = buf.get_u32();
            let kind = buf.get_u8();
            PgOutput::Delete {
                relation,
                kind,
                old: tuple(&mut buf, "Delete")?,
            }
        }
        b'T' => {
            need(&buf, 5, "Truncate")?;
            let n = buf.get_u32() as usize;
            let options = buf.get_u8();
            need(&buf, n.saturating_mul(4), "Truncate")?;
            let relations = (0..n).map(|_| buf.get_u32()).collect();
            PgOutput::Truncate {
                relations,
                cascade: options & 1 == 1,
                restart_identity: options & 2 == 2,
            }
        }
        b'M' => {
            need(&buf, 9, "Message")?;
            let flags = buf.get_u8();
            let lsn = Lsn(buf.get_u64());
            let prefix = cstring(&mut buf, "Message")?;
            need(&buf, 4, "Message")?;
            let len = buf.get_u32() as usize;
            need(&buf, len, "Message")?;
            PgOutput::Message {
                transactional: flags & 1 == 1,
                lsn,
                prefix,
                content: buf.split_to(len),
            }
        }
        other => {
            return Err(PgError::Protocol(format!(
                "unknown pgoutput message {:?} (proto_version 1 expected)",
                other as char
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn relation_and_insert() {
        let mut b = BytesMut::new();
        b.put_u8(b'R');
        b.put_u32(16384);
        b.put_slice(b"public\0orders\0");
        b.put_u8(b'd');
        b.put_i16(2);
        b.put_u8(1);
        b.put_slice(b"id\0");
        b.put_u32(23);
        b.put_i32(-1);
        b.put_u8(0);
        b.put_slice(b"note\0");
        b.put_u32(25);
        b.put_i32(-1);
        let PgOutput::Relation(r) = decode(b.freeze()).expect("relation") else {
            panic!("relation expected")
        };
        assert_eq!(r.name, "orders");
        assert!(r.columns[0].key && !r.columns[1].key);

        let mut b = BytesMut::new();
        b.put_u8(b'I');
        b.put_u32(16384);
        b.put_u8(b'N');
        b.put_i16(3);
        b.put_u8(b't');
        b.put_i32(2);
        b.put_slice(b"42");
        b.put_u8(b'n');
        b.put_u8(b'u');
        assert_eq!(
            decode(b.freeze()).expect("insert"),
            PgOutput::Insert {
                relation: 16384,
                new: vec![
                    TupleValue::Text(Bytes::from_static(b"42")),
                    TupleValue::Null,
                    TupleValue::Unchanged
                ]
            }
        );
    }

    #[test]
    fn truncated_messages_are_errors() {
        assert!(decode(Bytes::from_static(b"B\0\0")).is_err());
        assert!(decode(Bytes::from_static(b"I\0\0\0\x01N\0\x01t\0\0\0\x09ab")).is_err());
        assert!(decode(Bytes::from_static(b"Z")).is_err());
    }
}
