//! The change-event model shared by every connector and converter.

mod decimal;
mod event;
mod schema;
pub mod time;
mod value;

pub use decimal::{Decimal, DecimalParseError};
pub use event::{ChangeEvent, Op, SnapshotMarker, SourceInfo, TransactionInfo};
pub use schema::{Column, DataType, SchemaRef, TableId, TableSchema};
pub use value::{Row, Value};
