//! The polling query of each mode and the offsets it resumes from, in Kafka Connect's format.
//!
//! ```text
//! incrementing            WHERE inc > :inc                              ORDER BY inc
//! timestamp               WHERE ts > :ts AND ts < :end                  ORDER BY ts
//! timestamp+incrementing  WHERE ts < :end AND ((ts = :ts AND inc > :inc) OR ts > :ts)
//!                                                                       ORDER BY ts, inc
//! ts = COALESCE(timestamp.column.name...), end = database clock - timestamp.delay.interval.ms
//! ```
//! Each query reads at most `batch.max.rows`. The offset of a row is
//! `{"incrementing": N}`, `{"timestamp": ms, "timestamp_nanos": ns}` or both, exactly as
//! Confluent's `TimestampIncrementingOffset` writes it.

use serde_json::{Value as Json, json};
use tributary_runtime::model::{Row, Value};
use tributary_runtime::record::{OffsetOrder, SourceOffset};

use crate::config::Mode;
use crate::dialect::Sql;
use crate::zone::DbTimeZone;

/// The last row read of a table: where the next query starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub incrementing: Option<i64>,
    /// Epoch microseconds.
    pub timestamp_us: Option<i64>,
}

/// Maps `i64` to `u64` preserving order.
fn ordered(n: i64) -> u64 {
    (n as u64) ^ (1 << 63)
}

impl Position {
    /// Reads a stored Kafka Connect offset.
    pub fn from_offset(offset: &Json) -> Position {
        let timestamp_us = offset.get("timestamp").and_then(Json::as_i64).map(|ms| {
            let nanos = offset
                .get("timestamp_nanos")
                .and_then(Json::as_i64)
                .unwrap_or(ms.rem_euclid(1000) * 1_000_000);
            ms.div_euclid(1000) * 1_000_000 + nanos / 1000
        });
        Position {
            incrementing: offset.get("incrementing").and_then(Json::as_i64),
            timestamp_us,
        }
    }

    /// The Kafka Connect offset of this position, with its order.
    pub fn to_offset(self) -> SourceOffset {
        let mut value = serde_json::Map::new();
        if let Some(us) = self.timestamp_us {
            value.insert("timestamp".into(), json!(us.div_euclid(1000)));
            value.insert(
                "timestamp_nanos".into(),
                json!(us.rem_euclid(1_000_000) * 1000),
            );
        }
        if let Some(n) = self.incrementing {
            value.insert("incrementing".into(), json!(n));
        }
        let order = match (self.timestamp_us, self.incrementing) {
            (Some(ts), Some(n)) => [ordered(ts), ordered(n), 0],
            (Some(ts), None) => [ordered(ts), 0, 0],
            (None, Some(n)) => [ordered(n), 0, 0],
            (None, None) => [0, 0, 0],
        };
        SourceOffset {
            value: Json::Object(value),
            order: OffsetOrder(order),
        }
    }
}

/// The columns a mode filters on (indexes into the selected columns) and how to write them.
#[derive(Debug, Clone)]
pub struct Criteria {
    pub mode: Mode,
    pub incrementing: Option<(usize, String)>,
    pub timestamps: Vec<(usize, String)>,
    /// The timestamp columns hold wall-clock times (MySQL literals need to know).
    pub naive: bool,
    pub timezone: DbTimeZone,
    pub sql: Sql,
}

impl Criteria {
    fn ts_expr(&self) -> String {
        match self.timestamps.as_slice() {
            [(_, one)] => one.clone(),
            many => format!(
                "COALESCE({})",
                many.iter()
                    .map(|(_, c)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn ts_literal(&self, us: i64) -> String {
        self.sql
            .timestamp_literal(us, self.timezone.offset_at(us), self.naive)
    }

    /// The query after `position`. `end_us` bounds timestamp modes; `limit` caps the rows.
    pub fn next_rows(
        &self,
        select: &str,
        position: &Position,
        end_us: i64,
        limit: usize,
    ) -> String {
        let mut conditions = Vec::new();
        let mut order = Vec::new();
        let inc = self.incrementing.as_ref().map(|(_, c)| c.as_str());
        match self.mode {
            Mode::Bulk => return select.to_owned(),
            Mode::Incrementing => {
                let inc = inc.unwrap_or("1");
                conditions.push(match position.incrementing {
                    Some(n) => format!("{inc} > {n}"),
                    // Rows without a value could never be resumed after.
                    None => format!("{inc} IS NOT NULL"),
                });
                order.push(inc.to_owned());
            }
            Mode::Timestamp => {
                let ts = self.ts_expr();
                if let Some(us) = position.timestamp_us {
                    conditions.push(format!("{ts} > {}", self.ts_literal(us)));
                }
                conditions.push(format!("{ts} < {}", self.ts_literal(end_us)));
                order.push(ts);
            }
            Mode::TimestampIncrementing => {
                let ts = self.ts_expr();
                let inc = inc.unwrap_or("1");
                conditions.push(format!("{ts} < {}", self.ts_literal(end_us)));
                match (position.timestamp_us, position.incrementing) {
                    (Some(us), Some(n)) => {
                        let lit = self.ts_literal(us);
                        conditions
                            .push(format!("(({ts} = {lit} AND {inc} > {n}) OR {ts} > {lit})"));
                    }
                    (Some(us), None) => conditions.push(format!("{ts} > {}", self.ts_literal(us))),
                    _ => {}
                }
                order.push(ts);
                order.push(inc.to_owned());
            }
        }
        let filter = match conditions.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", conditions.join(" AND ")),
        };
        format!(
            "{select}{filter} ORDER BY {} LIMIT {limit}",
            order.join(", ")
        )
    }

    /// Every row whose timestamp equals `us` (completes a group a limited query cut).
    pub fn rows_at(&self, select: &str, us: i64) -> String {
        format!(
            "{select} WHERE {} = {}",
            self.ts_expr(),
            self.ts_literal(us)
        )
    }

    /// The position of a row (already adjusted to record values).
    pub fn position_of(&self, row: &Row) -> Result<Position, String> {
        let incrementing = match &self.incrementing {
            None => None,
            Some((i, name)) => Some(match row.0.get(*i) {
                Some(Value::Int(n)) => *n,
                Some(Value::UInt(n)) => i64::try_from(*n).map_err(|_| {
                    format!("incrementing column {name}: {n} exceeds a signed 64-bit offset")
                })?,
                Some(Value::Decimal(d)) => d
                    .to_string()
                    .split('.')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        format!("incrementing column {name}: value does not fit a 64-bit offset")
                    })?,
                Some(Value::Null) | None => {
                    return Err(format!("incrementing column {name} is null in a row"));
                }
                Some(_) => return Err(format!("incrementing column {name} is not an integer")),
            }),
        };
        let mut timestamp_us = None;
        for (i, _) in &self.timestamps {
            match row.0.get(*i) {
                Some(Value::Timestamp(us)) => {
                    timestamp_us = Some(*us);
                    break;
                }
                Some(Value::Date(days)) => {
                    timestamp_us = Some(self.timezone.to_utc(i64::from(*days) * 86_400_000_000));
                    break;
                }
                _ => {}
            }
        }
        if self.mode.uses_timestamp() && timestamp_us.is_none() {
            let names: Vec<&str> = self.timestamps.iter().map(|(_, n)| n.as_str()).collect();
            return Err(format!(
                "timestamp columns {} are all null in a row",
                names.join(", ")
            ));
        }
        Ok(Position {
            incrementing,
            timestamp_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DialectKind;

    fn criteria(mode: Mode) -> Criteria {
        Criteria {
            mode,
            incrementing: Some((0, "\"id\"".into())),
            timestamps: vec![(1, "\"updated\"".into()), (2, "\"created\"".into())],
            naive: true,
            timezone: DbTimeZone::Fixed(0),
            sql: Sql {
                kind: DialectKind::Postgres,
                quote: true,
            },
        }
    }

    #[test]
    fn offsets_round_trip_in_kafka_connect_format() {
        let p = Position {
            incrementing: Some(42),
            timestamp_us: Some(1_700_000_000_123_456),
        };
        let o = p.to_offset();
        assert_eq!(
            o.value,
            json!({"timestamp": 1_700_000_000_123_i64, "timestamp_nanos": 123_456_000, "incrementing": 42})
        );
        assert_eq!(Position::from_offset(&o.value), p);
        let before = Position {
            incrementing: Some(-5),
            timestamp_us: None,
        }
        .to_offset()
        .order;
        let after = Position {
            incrementing: Some(3),
            timestamp_us: None,
        }
        .to_offset()
        .order;
        assert!(before < after, "negative ids order before positive ones");
        // Confluent's offsets of timestamps before 1970 keep nanos within the second.
        let old = Position {
            incrementing: None,
            timestamp_us: Some(-1),
        };
        assert_eq!(Position::from_offset(&old.to_offset().value), old);
    }

    #[test]
    fn queries_of_each_mode() {
        let p = Position {
            incrementing: Some(7),
            timestamp_us: Some(0),
        };
        let sel = "SELECT * FROM t";
        assert_eq!(
            criteria(Mode::Incrementing).next_rows(sel, &p, 0, 10),
            "SELECT * FROM t WHERE \"id\" > 7 ORDER BY \"id\" LIMIT 10"
        );
        assert_eq!(
            criteria(Mode::Timestamp).next_rows(sel, &p, 1_000_000, 5),
            "SELECT * FROM t WHERE COALESCE(\"updated\", \"created\") > '1970-01-01 00:00:00.000000+00:00' AND COALESCE(\"updated\", \"created\") < '1970-01-01 00:00:01.000000+00:00' ORDER BY COALESCE(\"updated\", \"created\") LIMIT 5"
        );
        let q = criteria(Mode::TimestampIncrementing).next_rows(sel, &p, 0, 5);
        assert!(
            q.contains("AND \"id\" > 7) OR COALESCE")
                && q.ends_with("ORDER BY COALESCE(\"updated\", \"created\"), \"id\" LIMIT 5"),
            "{q}"
        );
        assert_eq!(criteria(Mode::Bulk).next_rows(sel, &p, 0, 5), sel);
        assert_eq!(
            criteria(Mode::Incrementing).next_rows(sel, &Position::default(), 0, 3),
            "SELECT * FROM t WHERE \"id\" IS NOT NULL ORDER BY \"id\" LIMIT 3"
        );
    }

    #[test]
    fn positions_coalesce_timestamps() {
        let c = criteria(Mode::TimestampIncrementing);
        let row = Row(vec![Value::Int(3), Value::Null, Value::Timestamp(99)]);
        assert_eq!(
            c.position_of(&row),
            Ok(Position {
                incrementing: Some(3),
                timestamp_us: Some(99)
            })
        );
        let row = Row(vec![Value::Int(3), Value::Null, Value::Null]);
        assert!(
            c.position_of(&row)
                .expect_err("all null")
                .contains("all null")
        );
    }
}
