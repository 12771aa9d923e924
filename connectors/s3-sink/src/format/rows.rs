//! A compact binary form of Connect values, for rows waiting in a local spill file until
//! their Parquet object is written (Parquet is columnar: a file's rows are only turned into
//! columns when it is committed).

use std::io::{self, Read, Write};

use bytes::Bytes;
use tributary_runtime::data::Data;

/// Appends `data` to `out`.
pub fn encode(out: &mut Vec<u8>, data: &Data) {
    match data {
        Data::Null => out.push(0),
        Data::Boolean(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Data::Int8(n) => {
            out.push(2);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Data::Int16(n) => {
            out.push(3);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Data::Int32(n) => {
            out.push(4);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Data::Int64(n) => {
            out.push(5);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Data::Float32(f) => {
            out.push(6);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Data::Float64(f) => {
            out.push(7);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Data::String(s) => {
            out.push(8);
            len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Data::Bytes(b) => {
            out.push(9);
            len(out, b.len());
            out.extend_from_slice(b);
        }
        Data::Array(items) => {
            out.push(10);
            len(out, items.len());
            items.iter().for_each(|d| encode(out, d));
        }
        Data::Map(entries) => {
            out.push(11);
            len(out, entries.len());
            for (k, v) in entries {
                encode(out, k);
                encode(out, v);
            }
        }
        Data::Struct(values) => {
            out.push(12);
            len(out, values.len());
            values.iter().for_each(|d| encode(out, d));
        }
    }
}

fn len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// Reads one value written by [`encode`].
pub fn decode(input: &mut &[u8]) -> Result<Data, String> {
    let tag = take::<1>(input)?[0];
    Ok(match tag {
        0 => Data::Null,
        1 => Data::Boolean(take::<1>(input)?[0] != 0),
        2 => Data::Int8(i8::from_le_bytes(take(input)?)),
        3 => Data::Int16(i16::from_le_bytes(take(input)?)),
        4 => Data::Int32(i32::from_le_bytes(take(input)?)),
        5 => Data::Int64(i64::from_le_bytes(take(input)?)),
        6 => Data::Float32(f32::from_le_bytes(take(input)?)),
        7 => Data::Float64(f64::from_le_bytes(take(input)?)),
        8 => {
            let bytes = take_slice(input)?;
            Data::String(String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())?)
        }
        9 => Data::Bytes(Bytes::copy_from_slice(take_slice(input)?)),
        10 | 12 => {
            let n = u32::from_le_bytes(take(input)?) as usize;
            let items = (0..n)
                .map(|_| decode(input))
                .collect::<Result<Vec<_>, _>>()?;
            if tag == 10 {
                Data::Array(items)
            } else {
                Data::Struct(items)
            }
        }
        11 => {
            let n = u32::from_le_bytes(take(input)?) as usize;
            let mut entries = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                entries.push((decode(input)?, decode(input)?));
            }
            Data::Map(entries)
        }
        other => return Err(format!("corrupt spill file: unknown tag {other}")),
    })
}

fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], String> {
    if input.len() < N {
        return Err("corrupt spill file: truncated value".into());
    }
    let (head, rest) = input.split_at(N);
    *input = rest;
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Ok(out)
}

fn take_slice<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let n = u32::from_le_bytes(take(input)?) as usize;
    if input.len() < n {
        return Err("corrupt spill file: truncated value".into());
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// Writes one length-prefixed frame.
pub fn write_frame(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    w.write_all(&(frame.len() as u32).to_le_bytes())?;
    w.write_all(frame)
}

/// Reads the next frame into `buf`; `false` at the end of the file.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut head = [0u8; 4];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    buf.resize(u32::from_le_bytes(head) as usize, 0);
    r.read_exact(buf)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = Data::Struct(vec![
            Data::Null,
            Data::Boolean(true),
            Data::Int8(-3),
            Data::Int16(300),
            Data::Int32(-70_000),
            Data::Int64(i64::MIN),
            Data::Float32(1.5),
            Data::Float64(-2.25),
            Data::String("héllo".into()),
            Data::Bytes(Bytes::from_static(b"\x00\xff")),
            Data::Array(vec![Data::Int32(1), Data::Null]),
            Data::Map(vec![(Data::String("k".into()), Data::Int64(9))]),
        ]);
        let mut out = Vec::new();
        encode(&mut out, &data);
        let mut input = out.as_slice();
        assert_eq!(decode(&mut input).expect("decode"), data);
        assert!(input.is_empty());
        let mut short = &out[..out.len() - 1];
        assert!(decode(&mut short).is_err());
    }
}
