//! Row images of a rows event, read straight from the event body.
//!
//! A rows event holds, per row, a null bitmap and the values of the columns present in the
//! image (`WRITE`: after image; `DELETE`: before; `UPDATE`: before then after). mysql_common's
//! row iterator also rebuilds full column metadata (names, flags, an `Arc` per row) from the
//! `TABLE_MAP`'s optional metadata for every row it reads; we keep the layout per table
//! version ([`WireColumn`], built once per `TABLE_MAP` change) and only call mysql_common's
//! value decoder, with the same context its row iterator passes it, so every value decodes
//! exactly as before. MySQL's `PARTIAL_UPDATE_ROWS_EVENT` (partial JSON) is left to
//! mysql_common.
//!
//! See <https://dev.mysql.com/doc/dev/mysql-server/latest/classmysql_1_1binlog_1_1event_1_1Rows__event.html>.

use std::io;

use mysql_async::Value;
use mysql_async::binlog::value::BinlogValue;
use mysql_common::io::ParseBuf;

use crate::schema::WireColumn;

/// One image: the values of its present columns, in column order.
pub type Image<'a> = Vec<BinlogValue<'a>>;

/// Reads the rows of one rows event, image by image.
pub struct ImageReader<'a> {
    buf: ParseBuf<'a>,
    wire: &'a [WireColumn],
    before: Option<Vec<bool>>,
    after: Option<Vec<bool>>,
}

impl<'a> ImageReader<'a> {
    /// `before`/`after`: which columns each image holds (the event's column bitmaps), or
    /// `None` when the event has no such image.
    pub fn new(
        rows_data: &'a [u8],
        wire: &'a [WireColumn],
        before: Option<Vec<bool>>,
        after: Option<Vec<bool>>,
    ) -> io::Result<ImageReader<'a>> {
        for present in [&before, &after].into_iter().flatten() {
            if present.len() != wire.len() {
                return Err(invalid(format!(
                    "the rows event has {} columns but its TABLE_MAP {}",
                    present.len(),
                    wire.len()
                )));
            }
        }
        Ok(ImageReader {
            buf: ParseBuf(rows_data),
            wire,
            before,
            after,
        })
    }

    /// The next row's (before, after) images; `None` at the end of the event.
    #[allow(clippy::type_complexity)]
    pub fn next_row(&mut self) -> Option<io::Result<(Option<Image<'a>>, Option<Image<'a>>)>> {
        if self.buf.is_empty() {
            return None;
        }
        let mut row = || {
            let before = match &self.before {
                Some(present) => Some(read_image(&mut self.buf, self.wire, present)?),
                None => None,
            };
            let after = match &self.after {
                Some(present) => Some(read_image(&mut self.buf, self.wire, present)?),
                None => None,
            };
            Ok((before, after))
        };
        Some(row())
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// One image: the null bitmap over the present columns, then each non-null value.
fn read_image<'a>(
    buf: &mut ParseBuf<'a>,
    wire: &'a [WireColumn],
    present: &[bool],
) -> io::Result<Image<'a>> {
    let count = present.iter().filter(|p| **p).count();
    let nulls: &[u8] = buf.parse(count.div_ceil(8))?;
    let mut values = Vec::with_capacity(count);
    let columns = wire.iter().zip(present).filter(|(_, p)| **p);
    for (k, (column, _)) in columns.enumerate() {
        let null = nulls.get(k / 8).is_none_or(|b| (b >> (k % 8)) & 1 == 1);
        if null {
            values.push(BinlogValue::Value(Value::NULL));
            continue;
        }
        let ctx = (column.ty, column.meta.as_slice(), column.unsigned, false);
        values.push(buf.parse::<BinlogValue<'a>>(ctx)?);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use mysql_async::consts::ColumnType;

    use super::*;

    fn long(unsigned: bool) -> WireColumn {
        WireColumn {
            ty: ColumnType::MYSQL_TYPE_LONG,
            meta: Vec::new(),
            unsigned,
        }
    }

    fn varchar() -> WireColumn {
        WireColumn {
            ty: ColumnType::MYSQL_TYPE_VARCHAR,
            // Max length 255: one length byte.
            meta: vec![255, 0],
            unsigned: false,
        }
    }

    #[test]
    fn reads_nulls_values_and_both_images() {
        let wire = [long(false), varchar(), long(true)];
        let all = vec![true, true, true];
        // Row 1: before (7, "ab", NULL), after (-1, NULL, 4294967295).
        let mut data = vec![0b100];
        data.extend(7i32.to_le_bytes());
        data.extend([2, b'a', b'b']);
        data.push(0b010);
        data.extend((-1i32).to_le_bytes());
        data.extend(u32::MAX.to_le_bytes());
        let mut reader =
            ImageReader::new(&data, &wire, Some(all.clone()), Some(all)).expect("reader");
        let (before, after) = reader.next_row().expect("a row").expect("decodes");
        let value = |v: &BinlogValue<'_>| match v {
            BinlogValue::Value(v) => v.clone(),
            other => panic!("not a plain value: {other:?}"),
        };
        let before: Vec<Value> = before.expect("before").iter().map(value).collect();
        let after: Vec<Value> = after.expect("after").iter().map(value).collect();
        assert_eq!(
            before,
            [Value::Int(7), Value::Bytes(b"ab".to_vec()), Value::NULL]
        );
        // mysql_common hands unsigned 32-bit values back as `Int` holding the unsigned value.
        assert_eq!(
            after,
            [Value::Int(-1), Value::NULL, Value::Int(i64::from(u32::MAX))]
        );
        assert!(reader.next_row().is_none(), "one row only");
    }

    #[test]
    fn only_present_columns_are_read_and_truncation_is_an_error() {
        let wire = [long(false), varchar()];
        // The after image holds column 1 only.
        let data = [0u8, 1, b'z'];
        let mut reader =
            ImageReader::new(&data, &wire, None, Some(vec![false, true])).expect("reader");
        let (_, after) = reader.next_row().expect("row").expect("decodes");
        assert_eq!(after.expect("after").len(), 1);

        let truncated = [0u8, 5, b'z'];
        let mut reader =
            ImageReader::new(&truncated, &wire, None, Some(vec![false, true])).expect("reader");
        assert!(reader.next_row().expect("row").is_err());

        assert!(ImageReader::new(&data, &wire, None, Some(vec![true])).is_err());
    }
}
