//! Reading the server's result rows without panicking.
//!
//! mysql_common's typed reads (`FromRow` tuples through `query`/`exec`/`query_first`,
//! `Row::take::<String>`) panic when a value does not convert: bytes that are not UTF-8 (a
//! `BINARY` column's default in `information_schema.COLUMNS`, the same in `SHOW CREATE
//! TABLE`) or a NULL where a `String` was expected. Server text is therefore read as a
//! [`Row`] and each value taken with these.

use mysql_async::{Row, Value};

/// Column `i` as text: NULL (or no such column) as `None`, bytes that are not UTF-8 with
/// U+FFFD in place of the bad sequences, numbers and temporals as their SQL text.
pub(crate) fn text(row: &mut Row, i: usize) -> Option<String> {
    // `Value` converts to itself: this take cannot fail.
    match row.take_opt::<Value, _>(i)?.ok()? {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

/// Column `i` as an unsigned number: NULL, a missing column or a value that is not one as
/// `None`.
pub(crate) fn number(row: &mut Row, i: usize) -> Option<u64> {
    row.take_opt::<Option<u64>, _>(i)?.ok()?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mysql_common::constants::ColumnType;
    use mysql_common::packets::Column;

    use super::*;

    fn row(values: Vec<Value>) -> Row {
        let columns: Arc<[Column]> = values
            .iter()
            .map(|_| Column::new(ColumnType::MYSQL_TYPE_VAR_STRING))
            .collect();
        mysql_common::row::new_row(values, columns)
    }

    #[test]
    fn text_never_panics() {
        let mut r = row(vec![
            Value::Bytes(b"'\xFF\xFE'".to_vec()),
            Value::NULL,
            Value::Bytes("é".as_bytes().to_vec()),
            Value::Int(-3),
            Value::Bytes(b"12".to_vec()),
            Value::Bytes(b"x".to_vec()),
            Value::NULL,
        ]);
        assert_eq!(text(&mut r, 0).as_deref(), Some("'\u{FFFD}\u{FFFD}'"));
        assert_eq!(text(&mut r, 1), None);
        assert_eq!(text(&mut r, 2).as_deref(), Some("é"));
        assert_eq!(text(&mut r, 3).as_deref(), Some("-3"));
        assert_eq!(text(&mut r, 9), None, "no such column");
        assert_eq!(text(&mut r, 0), None, "taken already");
        assert_eq!(number(&mut r, 4), Some(12));
        assert_eq!(number(&mut r, 5), None, "not a number");
        assert_eq!(number(&mut r, 6), None, "NULL");
    }
}
