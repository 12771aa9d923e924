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
use mysql_async::consts::ColumnType;
use mysql_common::io::ParseBuf;
use tributary_runtime::model::Decimal;

use crate::schema::WireColumn;

/// One value of an image: mysql_common's decoding, or a `DECIMAL` read straight into ours
/// (mysql_common prints it as text, which we would parse again: ~1,000 instructions a value).
#[derive(Debug)]
pub enum Cell<'a> {
    Wire(BinlogValue<'a>),
    Decimal(Decimal),
}

/// One image: the values of its present columns, in column order.
pub type Image<'a> = Vec<Cell<'a>>;

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
            values.push(Cell::Wire(BinlogValue::Value(Value::NULL)));
            continue;
        }
        if column.ty == ColumnType::MYSQL_TYPE_NEWDECIMAL {
            values.push(Cell::Decimal(read_decimal(buf, &column.meta)?));
            continue;
        }
        let ctx = (column.ty, column.meta.as_slice(), column.unsigned, false);
        values.push(Cell::Wire(buf.parse::<BinlogValue<'a>>(ctx)?));
    }
    Ok(values)
}

/// Bytes of a group of `n` decimal digits (`dig2bytes` in MySQL's `strings/decimal.cc`).
const DIGIT_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// Reads a binary `DECIMAL(precision, scale)` (metadata: precision, scale), MySQL's
/// `bin2decimal`: groups of 9 digits in 4 big-endian bytes, a shorter leading group for the
/// integer part and a shorter trailing one for the fraction; the first bit is the sign
/// (set: positive), and every bit of a negative value is inverted.
fn read_decimal(buf: &mut ParseBuf<'_>, meta: &[u8]) -> io::Result<Decimal> {
    let (precision, scale) = match meta {
        [p, s, ..] if s <= p && *p <= 65 => (usize::from(*p), usize::from(*s)),
        _ => return Err(invalid(format!("bad DECIMAL metadata {meta:?}"))),
    };
    let (intg, frac) = (precision - scale, scale);
    let (intg_full, intg_rest) = (intg / 9, intg % 9);
    let (frac_full, frac_rest) = (frac / 9, frac % 9);
    let size = intg_full * 4 + DIGIT_BYTES[intg_rest] + frac_full * 4 + DIGIT_BYTES[frac_rest];
    let raw = buf
        .checked_eat(size)
        .ok_or_else(|| invalid(format!("DECIMAL({precision},{scale}) cut short")))?;
    let negative = raw.first().is_some_and(|b| b & 0x80 == 0);
    let mask = if negative { 0xff } else { 0x00 };
    let mut at = 0;
    let mut group = |len: usize| -> u32 {
        let mut v = 0u32;
        for (i, b) in raw[at..at + len].iter().enumerate() {
            let b = if at + i == 0 { b ^ 0x80 } else { *b };
            v = (v << 8) | u32::from(b ^ mask);
        }
        at += len;
        v
    };
    let mut digits = String::with_capacity(precision + 1);
    let mut push = |v: u32, width: usize| -> io::Result<()> {
        if width < 9 && v >= 10u32.pow(width as u32) || v >= 1_000_000_000 {
            return Err(invalid(format!(
                "corrupt DECIMAL({precision},{scale}): group {v} has more than {width} digits"
            )));
        }
        let mut text = [b'0'; 9];
        let mut rest = v;
        for slot in text[..width].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        digits.extend(text[..width].iter().map(|&b| char::from(b)));
        Ok(())
    };
    if intg_rest > 0 {
        push(group(DIGIT_BYTES[intg_rest]), intg_rest)?;
    }
    for _ in 0..intg_full + frac_full {
        push(group(4), 9)?;
    }
    if frac_rest > 0 {
        push(group(DIGIT_BYTES[frac_rest]), frac_rest)?;
    }
    let scale = u32::try_from(scale).unwrap_or(0);
    Decimal::from_unscaled_digits(negative, digits, scale)
        .ok_or_else(|| invalid("DECIMAL digits".into()))
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
        let value = |v: &Cell<'_>| match v {
            Cell::Wire(BinlogValue::Value(v)) => v.clone(),
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

    /// `text` as MySQL stores it in a `DECIMAL(precision, scale)` column (`decimal2bin`).
    fn decimal_column(text: &str, precision: usize, scale: usize) -> Vec<u8> {
        let (negative, text) = match text.strip_prefix('-') {
            Some(t) => (true, t),
            None => (false, text),
        };
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let intg = precision - scale;
        let digits = format!("{int:0>intg$}{frac:0<scale$}");
        let mut widths = vec![intg % 9];
        widths.extend(std::iter::repeat_n(9, intg / 9 + scale / 9));
        widths.push(scale % 9);
        let mut out = Vec::new();
        let mut at = 0;
        for width in widths.into_iter().filter(|w| *w > 0) {
            let v: u32 = digits[at..at + width].parse().expect("digits");
            at += width;
            let bytes = v.to_be_bytes();
            out.extend_from_slice(&bytes[4 - DIGIT_BYTES[width]..]);
        }
        if negative {
            out.iter_mut().for_each(|b| *b = !*b);
        }
        out[0] ^= 0x80;
        out
    }

    /// Our binary DECIMAL reader against mysql_common's reader and printer (what we used
    /// before), for edge and random values of every precision and many scales.
    #[test]
    fn decimals_decode_as_mysql_common_reads_them() {
        use mysql_common::binlog::decimal::Decimal as MyDecimal;

        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let frac_of = |f: &str| {
            if f.is_empty() {
                String::new()
            } else {
                format!(".{f}")
            }
        };
        let mut checked = 0;
        for precision in 1..=65usize {
            let scales = [0, 1, 2, 4, 8, 9, 10, 17, 18, 19, 30];
            for scale in scales.into_iter().filter(|s| *s <= precision && *s <= 30) {
                let intg = precision - scale;
                let mut cases = vec![
                    format!("{}{}", "9".repeat(intg), frac_of(&"9".repeat(scale))),
                    format!("-{}{}", "9".repeat(intg), frac_of(&"9".repeat(scale))),
                    format!("0{}", frac_of(&"0".repeat(scale))),
                    format!("-0{}", frac_of(&format!("{:0>scale$}", "1"))),
                ];
                for _ in 0..20 {
                    let digit = |r: u64| char::from(b'0' + (r % 10) as u8);
                    let int: String = (0..intg).map(|_| digit(next())).collect();
                    let frac: String = (0..scale).map(|_| digit(next())).collect();
                    let sign = if next() % 2 == 0 { "-" } else { "" };
                    cases.push(format!("{sign}{int}{}", frac_of(&frac)));
                }
                for text in &cases {
                    let column = decimal_column(text, precision, scale);
                    let mut buf = ParseBuf(&column);
                    let ours =
                        read_decimal(&mut buf, &[precision as u8, scale as u8]).expect("decodes");
                    assert!(buf.is_empty(), "{text}: every byte read");
                    let printed = MyDecimal::read_bin(&column[..], precision, scale, false)
                        .expect("mysql_common reads")
                        .to_string();
                    let theirs = Decimal::parse(&printed).expect("parses");
                    assert_eq!(ours, theirs, "DECIMAL({precision},{scale}) {text}");
                    assert_eq!(ours.scale() as usize, scale);
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked} values checked");
        // A group that holds more than its digits is corrupt, not a number.
        let mut bad = decimal_column("1.5", 2, 1);
        bad[1] = 0x80 ^ 0x0f;
        assert!(read_decimal(&mut ParseBuf(&bad), &[2, 1]).is_err());
        assert!(
            read_decimal(&mut ParseBuf(&[0x80]), &[10, 2]).is_err(),
            "cut short"
        );
        assert!(
            read_decimal(&mut ParseBuf(&[0x80]), &[2, 3]).is_err(),
            "scale > precision"
        );
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
