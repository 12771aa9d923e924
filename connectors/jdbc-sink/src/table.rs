//! Target tables as the sink sees them, and the schema changes a batch needs
//! (`auto.create`, `schema.evolution`).

use std::fmt;

use crate::mapping::{FieldSpec, SqlType};

/// A table name, optionally qualified by a schema (Postgres) or database (MySQL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A column of an existing target table.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetColumn {
    pub name: String,
    /// The type as the database spells it (Postgres: without modifiers, for casts).
    pub type_name: String,
    pub ty: SqlType,
    pub nullable: bool,
}

/// An existing target table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub name: TableName,
    pub columns: Vec<TargetColumn>,
    /// Primary key column names, in key order.
    pub key: Vec<String>,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&TargetColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// One change to a table's definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Alteration {
    AddColumn(FieldSpec),
    /// A wider type; `nullable`: the column allows NULL afterwards (MySQL's `MODIFY`
    /// restates nullability, so a relaxed NOT NULL travels with the widening).
    Widen {
        column: String,
        to: SqlType,
        nullable: bool,
    },
    DropNotNull {
        column: String,
    },
}

/// Adds `field` to the shapes a batch must hold: a name seen before keeps one spec with the
/// wider type and optional when either is (a batch can span an `ALTER TABLE ... MODIFY`, so
/// the same column can arrive as SMALLINT and then BIGINT; the table must take both).
pub fn merge_field(fields: &mut Vec<FieldSpec>, field: &FieldSpec) {
    match fields.iter_mut().find(|f| f.name == field.name) {
        None => fields.push(field.clone()),
        Some(seen) => {
            if let Some(wider) = seen.ty.widened_for(&field.ty) {
                seen.ty = wider;
            }
            seen.optional |= field.optional;
        }
    }
}

/// What `table` needs to hold rows with `fields`: missing columns (always added as
/// nullable), wider types, and NOT NULL relaxed where the records carry optional values.
/// Key columns never lose NOT NULL.
pub fn alterations(table: &TableInfo, fields: &[FieldSpec]) -> Vec<Alteration> {
    let mut out: Vec<Alteration> = Vec::new();
    for field in fields {
        match table.column(&field.name) {
            None => {
                if !out
                    .iter()
                    .any(|a| matches!(a, Alteration::AddColumn(f) if f.name == field.name))
                {
                    out.push(Alteration::AddColumn(FieldSpec {
                        optional: true,
                        ..field.clone()
                    }));
                }
            }
            Some(column) => {
                let is_key = table.key.contains(&field.name);
                let relax = field.optional && !column.nullable && !is_key;
                let widen = column.ty.widened_for(&field.ty);
                let touched = out.iter().any(|a| match a {
                    Alteration::Widen { column: c, .. } | Alteration::DropNotNull { column: c } => {
                        *c == field.name
                    }
                    Alteration::AddColumn(_) => false,
                });
                if touched {
                    continue;
                }
                if let Some(to) = widen {
                    out.push(Alteration::Widen {
                        column: field.name.clone(),
                        to,
                        nullable: column.nullable || relax,
                    });
                } else if relax {
                    out.push(Alteration::DropNotNull {
                        column: field.name.clone(),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spec_per_column_with_the_widest_type() {
        let mut fields = Vec::new();
        merge_field(&mut fields, &field("id", SqlType::Int32, false));
        merge_field(&mut fields, &field("extra", SqlType::Int16, false));
        merge_field(&mut fields, &field("extra", SqlType::Int64, true));
        merge_field(&mut fields, &field("extra", SqlType::Int32, false));
        assert_eq!(
            fields,
            [
                field("id", SqlType::Int32, false),
                field("extra", SqlType::Int64, true)
            ]
        );
        // A new table or a missing column is then created with the wide type.
        let table = TableInfo {
            name: TableName {
                schema: None,
                name: "t".into(),
            },
            columns: vec![col("id", SqlType::Int32, false)],
            key: vec!["id".into()],
        };
        assert_eq!(
            alterations(&table, &fields),
            [Alteration::AddColumn(field("extra", SqlType::Int64, true))]
        );
    }

    fn col(name: &str, ty: SqlType, nullable: bool) -> TargetColumn {
        TargetColumn {
            name: name.into(),
            type_name: String::new(),
            ty,
            nullable,
        }
    }

    fn field(name: &str, ty: SqlType, optional: bool) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            ty,
            optional,
        }
    }

    #[test]
    fn plans_add_widen_and_relax() {
        let table = TableInfo {
            name: TableName {
                schema: None,
                name: "t".into(),
            },
            columns: vec![
                col("id", SqlType::Int32, false),
                col("qty", SqlType::Int32, false),
                col("name", SqlType::Text, true),
            ],
            key: vec!["id".into()],
        };
        let fields = [
            field("id", SqlType::Int32, true),
            field("qty", SqlType::Int64, true),
            field("name", SqlType::Text, true),
            field("note", SqlType::Text, false),
        ];
        let plan = alterations(&table, &fields);
        assert_eq!(
            plan,
            vec![
                Alteration::Widen {
                    column: "qty".into(),
                    to: SqlType::Int64,
                    nullable: true,
                },
                Alteration::AddColumn(field("note", SqlType::Text, true)),
            ]
        );
        assert!(alterations(&table, &fields[2..3]).is_empty());
    }
}
