//! Confluent wire format: magic byte 0, the schema id as 4 big-endian bytes, then the
//! serialized data.
//!
//! <https://docs.confluent.io/platform/current/schema-registry/fundamentals/serdes-develop/index.html#wire-format>

/// The first byte of every Confluent-framed message.
pub const MAGIC: u8 = 0;

/// Length of the header written by [`write_header`].
pub const HEADER_LEN: usize = 5;

/// Appends the magic byte and the schema id.
pub fn write_header(buf: &mut Vec<u8>, schema_id: u32) {
    buf.push(MAGIC);
    buf.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a framed message into its schema id and payload; `None` when it is not framed.
pub fn read_header(bytes: &[u8]) -> Option<(u32, &[u8])> {
    match bytes {
        [MAGIC, a, b, c, d, rest @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut buf = Vec::new();
        write_header(&mut buf, 0x0102_0304);
        buf.push(42);
        assert_eq!(buf, [0, 1, 2, 3, 4, 42]);
        assert_eq!(read_header(&buf), Some((0x0102_0304, &[42u8][..])));
        assert_eq!(read_header(&[1, 0, 0, 0, 1]), None);
        assert_eq!(read_header(&[0, 0, 0]), None);
    }
}
