//! A small, safe condition language for the content filter: no loops, no calls, no I/O; it
//! can only read the record it is given.
//!
//! ```text
//! value.after.amount > 1000 && value.op == 'c'
//! !(key.id == 7) || headers.source == "eu" || topic =~ 'shop\..*'
//! ```
//!
//! - Paths: `value.<field>...`, `key.<field>...`, `topic`, `partition`, `offset`,
//!   `timestamp`, `headers.<name>` (text). A missing field is `null`.
//! - Literals: numbers, `'text'` or `"text"`, `true`, `false`, `null`.
//! - Operators: `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~` (regular expression, whole value),
//!   `&&`/`and`, `||`/`or`, `!`/`not`, parentheses.
//! - Numbers compare numerically across integer types, Connect `Decimal`s (exactly scaled),
//!   floats and numeric text. An ordering comparison with `null` or a non-number is false.

use std::cmp::Ordering;

use regex::Regex;

use crate::data::{ConnectRecord, ConnectSchema, ConnectType, Data, field_of};
use crate::error::ConnectorError;

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Expr(Node);

#[derive(Debug, Clone)]
enum Node {
    Lit(V),
    Path(Vec<String>),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(Box<Node>, CmpOp, Box<Node>),
    Matches(Box<Node>, Regex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// Structs, arrays, bytes: only `== null` / `!= null` say anything about them.
    Other,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Dot,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '.' if !chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                out.push(Tok::Dot);
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated text starting at {quote}{s}")),
                        Some('\\') => {
                            if let Some(n) = chars.get(i + 1) {
                                s.push(*n);
                            }
                            i += 2;
                        }
                        Some(&ch) if ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || chars[i] == '.'
                        || chars[i] == 'e'
                        || chars[i] == 'E'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = ["==", "!=", "<=", ">=", "&&", "||", "=~"]
                    .into_iter()
                    .find(|o| two == *o);
                match op {
                    Some(o) => {
                        out.push(Tok::Op(o));
                        i += 2;
                    }
                    None => {
                        let one = match c {
                            '<' => "<",
                            '>' => ">",
                            '!' => "!",
                            '-' => "-",
                            _ => return Err(format!("unexpected character {c:?}")),
                        };
                        out.push(Tok::Op(one));
                        i += 1;
                    }
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_op(&self, ops: &[&str]) -> Option<&'static str> {
        match self.peek() {
            Some(Tok::Op(o)) if ops.contains(o) => Some(o),
            Some(Tok::Ident(w)) if ops.contains(&w.as_str()) => match w.as_str() {
                "and" => Some("and"),
                "or" => Some("or"),
                "not" => Some("not"),
                _ => None,
            },
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut left = self.and()?;
        while self.is_op(&["||", "or"]).is_some() {
            self.pos += 1;
            left = Node::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut left = self.not()?;
        while self.is_op(&["&&", "and"]).is_some() {
            self.pos += 1;
            left = Node::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, String> {
        if self.is_op(&["!", "not"]).is_some() {
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Node, String> {
        let left = self.primary()?;
        let op = match self.is_op(&["==", "!=", "<", "<=", ">", ">=", "=~"]) {
            Some(op) => op,
            None => return Ok(left),
        };
        self.pos += 1;
        if op == "=~" {
            return match self.next() {
                Some(Tok::Str(pattern)) => Regex::new(&format!("^(?:{pattern})$"))
                    .map(|re| Node::Matches(Box::new(left), re))
                    .map_err(|e| format!("invalid regular expression {pattern:?}: {e}")),
                _ => Err("=~ needs a quoted regular expression on its right".into()),
            };
        }
        let right = self.primary()?;
        let op = match op {
            "==" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            _ => CmpOp::Ge,
        };
        Ok(Node::Cmp(Box::new(left), op, Box::new(right)))
    }

    fn primary(&mut self) -> Result<Node, String> {
        match self.next() {
            Some(Tok::LParen) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(inner),
                    _ => Err("missing )".into()),
                }
            }
            Some(Tok::Op("-")) => match self.next() {
                Some(Tok::Num(n)) => number(&format!("-{n}")),
                _ => Err("- must be followed by a number".into()),
            },
            Some(Tok::Num(n)) => number(&n),
            Some(Tok::Str(s)) => Ok(Node::Lit(V::Str(s))),
            Some(Tok::Ident(w)) => match w.as_str() {
                "true" => Ok(Node::Lit(V::Bool(true))),
                "false" => Ok(Node::Lit(V::Bool(false))),
                "null" => Ok(Node::Lit(V::Null)),
                _ => {
                    let mut path = vec![w];
                    while self.peek() == Some(&Tok::Dot) {
                        self.pos += 1;
                        match self.next() {
                            Some(Tok::Ident(p)) => path.push(p),
                            Some(Tok::Num(p)) => path.push(p),
                            _ => {
                                return Err(format!(
                                    "a field name must follow {}.",
                                    path.join(".")
                                ));
                            }
                        }
                    }
                    match path[0].as_str() {
                        "value" | "key" | "headers" if path.len() >= 2 || path[0] != "headers" => {
                            Ok(Node::Path(path))
                        }
                        "topic" | "partition" | "offset" | "timestamp" if path.len() == 1 => {
                            Ok(Node::Path(path))
                        }
                        _ => Err(format!(
                            "unknown name {:?}; paths start with value., key., headers., or are topic, partition, offset, timestamp",
                            path.join(".")
                        )),
                    }
                }
            },
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("unexpected end of the condition".into()),
        }
    }
}

fn number(text: &str) -> Result<Node, String> {
    if let Ok(i) = text.parse::<i128>() {
        return Ok(Node::Lit(V::Int(i)));
    }
    text.parse::<f64>()
        .map(|f| Node::Lit(V::Float(f)))
        .map_err(|_| format!("not a number: {text}"))
}

impl Expr {
    /// Parses a condition; the error says where it went wrong.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let toks = tokenize(text)?;
        if toks.is_empty() {
            return Err("the condition is empty".into());
        }
        let mut p = Parser { toks, pos: 0 };
        let node = p.or()?;
        if p.pos < p.toks.len() {
            return Err(format!(
                "unexpected {:?} after a complete condition",
                p.toks[p.pos]
            ));
        }
        Ok(Expr(node))
    }

    /// Whether the record satisfies the condition (non-boolean results are false).
    pub fn matches(&self, record: &ConnectRecord) -> Result<bool, ConnectorError> {
        Ok(eval(&self.0, record) == V::Bool(true))
    }
}

fn eval(node: &Node, r: &ConnectRecord) -> V {
    match node {
        Node::Lit(v) => v.clone(),
        Node::Path(path) => resolve(path, r),
        Node::Not(n) => match eval(n, r) {
            V::Bool(b) => V::Bool(!b),
            _ => V::Null,
        },
        Node::And(a, b) => V::Bool(eval(a, r) == V::Bool(true) && eval(b, r) == V::Bool(true)),
        Node::Or(a, b) => V::Bool(eval(a, r) == V::Bool(true) || eval(b, r) == V::Bool(true)),
        Node::Matches(a, re) => match eval(a, r) {
            V::Str(s) => V::Bool(re.is_match(&s)),
            V::Int(i) => V::Bool(re.is_match(&i.to_string())),
            V::Float(f) => V::Bool(re.is_match(&f.to_string())),
            _ => V::Bool(false),
        },
        Node::Cmp(a, op, b) => {
            let (x, y) = (eval(a, r), eval(b, r));
            let ord = compare(&x, &y);
            V::Bool(match op {
                CmpOp::Eq => ord == Some(Ordering::Equal) || (x == V::Null && y == V::Null),
                CmpOp::Ne => !(ord == Some(Ordering::Equal) || (x == V::Null && y == V::Null)),
                CmpOp::Lt => ord == Some(Ordering::Less),
                CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                CmpOp::Gt => ord == Some(Ordering::Greater),
                CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            })
        }
    }
}

fn numeric(v: &V) -> Option<V> {
    match v {
        V::Int(_) | V::Float(_) => Some(v.clone()),
        V::Str(s) => {
            let t = s.trim();
            t.parse::<i128>().map(V::Int).ok().or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(V::Float)
            })
        }
        _ => None,
    }
}

fn compare(x: &V, y: &V) -> Option<Ordering> {
    match (x, y) {
        (V::Null, _) | (_, V::Null) | (V::Other, _) | (_, V::Other) => None,
        (V::Bool(a), V::Bool(b)) => Some(a.cmp(b)),
        (V::Str(a), V::Str(b)) => Some(a.cmp(b)),
        _ => match (numeric(x)?, numeric(y)?) {
            (V::Int(a), V::Int(b)) => Some(a.cmp(&b)),
            (a, b) => to_f64(&a)?.partial_cmp(&to_f64(&b)?),
        },
    }
}

fn to_f64(v: &V) -> Option<f64> {
    match v {
        V::Int(i) => Some(*i as f64),
        V::Float(f) => Some(*f),
        _ => None,
    }
}

fn resolve(path: &[String], r: &ConnectRecord) -> V {
    let text = |s: &str| V::Str(s.to_owned());
    match path[0].as_str() {
        "topic" => text(&r.topic),
        "partition" => V::Int(r.partition.into()),
        "offset" => V::Int(r.offset.into()),
        "timestamp" => V::Int(r.timestamp_ms.into()),
        "headers" => r
            .headers
            .iter()
            .rev()
            .find(|(k, _)| *k == path[1..].join("."))
            .map_or(V::Null, |(_, v)| {
                V::Str(String::from_utf8_lossy(v).into_owned())
            }),
        side => {
            let sv = if side == "key" {
                r.key.as_ref()
            } else {
                r.value.as_ref()
            };
            let Some(sv) = sv else {
                return V::Null;
            };
            let mut schema = sv.schema.as_deref();
            let mut data = &sv.value;
            for part in &path[1..] {
                match field_of(schema, data, part) {
                    Some((s, d)) => {
                        schema = s;
                        data = d;
                    }
                    None => return V::Null,
                }
            }
            to_v(schema, data)
        }
    }
}

/// Connect data as an expression value; `Decimal`s and `VariableScaleDecimal`s become
/// numbers.
fn to_v(schema: Option<&ConnectSchema>, data: &Data) -> V {
    let name = schema.and_then(|s| s.name.as_deref());
    match data {
        Data::Null => V::Null,
        Data::Boolean(b) => V::Bool(*b),
        Data::Int8(_) | Data::Int16(_) | Data::Int32(_) | Data::Int64(_) => {
            V::Int(data.as_i64().map_or(0, i128::from))
        }
        Data::Float32(f) => V::Float(f64::from(*f)),
        Data::Float64(f) => V::Float(*f),
        Data::String(s) => V::Str(s.clone()),
        Data::Bytes(b) if name == Some("org.apache.kafka.connect.data.Decimal") => {
            let scale = schema
                .and_then(|s| s.parameters.iter().find(|(k, _)| k == "scale"))
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .unwrap_or(0);
            decimal(b, scale)
        }
        Data::Struct(values) if name == Some("io.debezium.data.VariableScaleDecimal") => {
            match (schema.map(|s| &s.ty), values.as_slice()) {
                (Some(ConnectType::Struct(_)), [scale, Data::Bytes(b)]) => {
                    decimal(b, scale.as_i64().unwrap_or(0).clamp(0, 38) as u32)
                }
                _ => V::Other,
            }
        }
        _ => V::Other,
    }
}

/// A two's-complement big-endian unscaled value at `scale`.
fn decimal(bytes: &[u8], scale: u32) -> V {
    if bytes.is_empty() || bytes.len() > 16 {
        return V::Other;
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut full = [if negative { 0xff } else { 0 }; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(full);
    if scale == 0 {
        V::Int(unscaled)
    } else {
        V::Float(unscaled as f64 / 10f64.powi(scale as i32))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::data::{ConnectField, SchemaAndValue};

    fn record() -> ConnectRecord {
        let dec = ConnectSchema {
            name: Some("org.apache.kafka.connect.data.Decimal".into()),
            parameters: vec![("scale".into(), "2".into())],
            ..ConnectSchema::new(ConnectType::Bytes)
        };
        let after = ConnectSchema::new(ConnectType::Struct(vec![
            ConnectField {
                name: "id".into(),
                schema: ConnectSchema::new(ConnectType::Int32),
            },
            ConnectField {
                name: "amount".into(),
                schema: dec,
            },
            ConnectField {
                name: "country".into(),
                schema: ConnectSchema::new(ConnectType::String).optional(true),
            },
        ]));
        let envelope = ConnectSchema::new(ConnectType::Struct(vec![
            ConnectField {
                name: "after".into(),
                schema: after.optional(true),
            },
            ConnectField {
                name: "op".into(),
                schema: ConnectSchema::new(ConnectType::String),
            },
        ]));
        // 1500.25 at scale 2 = 150025 = 0x02 0x4A 0x09
        let amount = Data::Bytes(bytes::Bytes::from_static(&[0x02, 0x4a, 0x09]));
        ConnectRecord {
            topic: Arc::from("shop.orders"),
            partition: 0,
            offset: 7,
            timestamp_ms: 0,
            key: None,
            value: Some(SchemaAndValue {
                schema: Some(Arc::new(envelope)),
                value: Data::Struct(vec![
                    Data::Struct(vec![Data::Int32(1), amount, Data::Null]),
                    Data::String("c".into()),
                ]),
            }),
            headers: vec![("region".into(), bytes::Bytes::from_static(b"eu"))],
        }
    }

    fn check(cond: &str) -> bool {
        Expr::parse(cond)
            .expect("parses")
            .matches(&record())
            .expect("evaluates")
    }

    #[test]
    fn the_fraud_example_matches() {
        assert!(check("value.after.amount > 1000 && value.op == 'c'"));
        assert!(!check("value.after.amount > 1000 && value.op == 'u'"));
        assert!(check("value.after.amount == 1500.25"));
        assert!(!check("value.after.amount > 1500.25"));
        assert!(check("value.after.id >= 1 and not (value.after.id != 1)"));
    }

    #[test]
    fn nulls_headers_topics_and_regexes() {
        assert!(check("value.after.country == null"));
        assert!(!check("value.after.country > 1"));
        assert!(!check("value.after.missing < 5"));
        assert!(check("headers.region == \"eu\""));
        assert!(check("topic =~ 'shop\\..*'"));
        assert!(!check("topic =~ 'shop'"));
        assert!(check("offset == 7 || false"));
        assert!(check("value.after.id == '1'"));
        assert!(check("-1 < 0"));
    }

    #[test]
    fn bad_conditions_say_why() {
        for bad in [
            "",
            "value.after.amount >",
            "(value.op == 'c'",
            "foo == 1",
            "value.op =~ 5",
            "a ++ b",
            "'open",
        ] {
            assert!(Expr::parse(bad).is_err(), "{bad} should not parse");
        }
    }
}
