//! Global transaction ids: MariaDB's `domain-server-seq` positions and MySQL's GTID sets.
//!
//! MariaDB's own binlog events are parsed by hand here (mysql_common does not know them):
//! `GTID_EVENT` (162) starts a transaction, `GTID_LIST_EVENT` (163) opens each binlog file with
//! the state at that point. The state is one `server-seq` per replication domain; resuming
//! hands it to the server as `@slave_connect_state`.
//!
//! MySQL's `GTID_EVENT` (33) is parsed by mysql_common; its `uuid:gno` is added to a
//! [`MySqlGtidSet`] when the transaction commits, and resuming hands that set to the server
//! with `COM_BINLOG_DUMP_GTID`.

use std::collections::BTreeMap;
use std::fmt;

/// MariaDB `GTID_EVENT` flag: the transaction has no XID/COMMIT (DDL, non-transactional).
pub const FL_STANDALONE: u8 = 1;

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A parsed MariaDB `GTID_EVENT` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidEvent {
    pub gtid: MariaGtid,
    pub flags: u8,
}

impl GtidEvent {
    pub fn standalone(&self) -> bool {
        self.flags & FL_STANDALONE != 0
    }
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    data.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// Parses a `GTID_EVENT` body (after the common header, checksum removed): `seq u64,
/// domain u32, flags u8, ...`. The server id is the event header's.
pub fn parse_gtid_event(data: &[u8], server_id: u32) -> Option<GtidEvent> {
    Some(GtidEvent {
        gtid: MariaGtid {
            domain: u32_at(data, 8)?,
            server: server_id,
            seq: u64_at(data, 0)?,
        },
        flags: *data.get(12)?,
    })
}

/// Parses a `GTID_LIST_EVENT` body: `count u32 (low 28 bits), then count × (domain u32,
/// server u32, seq u64)`.
pub fn parse_gtid_list(data: &[u8]) -> Option<Vec<MariaGtid>> {
    let count = (u32_at(data, 0)? & 0x0fff_ffff) as usize;
    let mut out = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let at = 4 + i * 16;
        out.push(MariaGtid {
            domain: u32_at(data, at)?,
            server: u32_at(data, at + 4)?,
            seq: u64_at(data, at + 8)?,
        });
    }
    Some(out)
}

/// The MariaDB replication state: the last GTID per domain (`@@gtid_binlog_pos` format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidState(BTreeMap<u32, (u32, u64)>);

impl GtidState {
    /// Parses `0-1-100,1-2-7` (empty text is the empty state).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.splitn(3, '-');
            let (Some(d), Some(s), Some(n)) = (it.next(), it.next(), it.next()) else {
                return Err(format!("expected domain-server-seq, got {part:?}"));
            };
            let bad = || format!("expected domain-server-seq numbers, got {part:?}");
            let domain: u32 = d.parse().map_err(|_| bad())?;
            let server: u32 = s.parse().map_err(|_| bad())?;
            let seq: u64 = n.parse().map_err(|_| bad())?;
            map.insert(domain, (server, seq));
        }
        Ok(GtidState(map))
    }

    pub fn apply(&mut self, gtid: MariaGtid) {
        self.0.insert(gtid.domain, (gtid.server, gtid.seq));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (domain, (server, seq))) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{domain}-{server}-{seq}")?;
        }
        Ok(())
    }
}

/// One MySQL GTID as its `GTID_EVENT` names it: the originating server's uuid and the
/// transaction's number. Printed `uuid:gno` in lowercase hex, as `@@gtid_executed` and
/// Debezium's `source.gtid` print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MySqlGtid {
    pub uuid: [u8; 16],
    pub gno: u64,
}

impl fmt::Display for MySqlGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uuid = tributary_runtime::converter::json::format_uuid(&self.uuid);
        write!(f, "{uuid}:{}", self.gno)
    }
}

/// A MySQL GTID set: `uuid:1-5:7,uuid2:1-100` (as `@@gtid_executed` prints it), used to
/// resume MySQL 8 with `COM_BINLOG_DUMP_GTID`.
///
/// Intervals are kept sorted, merged and half-open (`[start, end)`), the form
/// `COM_BINLOG_DUMP_GTID` carries; the text form is closed (`1-5` is `[1, 6)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MySqlGtidSet(BTreeMap<[u8; 16], Vec<(u64, u64)>>);

/// Sorts and merges overlapping or adjacent half-open intervals.
fn normalize(intervals: &mut Vec<(u64, u64)>) {
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(s, e) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *intervals = merged;
}

impl MySqlGtidSet {
    /// Parses `uuid:1-5:7,uuid2:1-100` (whitespace and the newlines MySQL prints after each
    /// comma are ignored; empty text is the empty set).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut map: BTreeMap<[u8; 16], Vec<(u64, u64)>> = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut pieces = part.split(':');
            let uuid_text = pieces.next().unwrap_or_default().trim();
            let uuid =
                parse_uuid(uuid_text).ok_or_else(|| format!("bad server uuid {uuid_text:?}"))?;
            let intervals = map.entry(uuid).or_default();
            for iv in pieces.map(str::trim) {
                let (a, b) = match iv.split_once('-') {
                    Some((a, b)) => (a, b),
                    None => (iv, iv),
                };
                let bad = || format!("bad interval {iv:?} in {part:?}");
                let start: u64 = a.parse().map_err(|_| bad())?;
                let end: u64 = b.parse().map_err(|_| bad())?;
                if start == 0 || end < start || end == u64::MAX {
                    return Err(bad());
                }
                intervals.push((start, end + 1));
            }
            normalize(intervals);
        }
        map.retain(|_, intervals| !intervals.is_empty());
        Ok(MySqlGtidSet(map))
    }

    /// Adds one transaction, merging adjacent intervals.
    pub fn add(&mut self, gtid: MySqlGtid) {
        let MySqlGtid { uuid, gno: seq } = gtid;
        let intervals = self.0.entry(uuid).or_default();
        // The usual case: the next number of the last interval.
        if let Some(last) = intervals.last_mut()
            && last.1 == seq
        {
            last.1 += 1;
            return;
        }
        intervals.push((seq, seq + 1));
        normalize(intervals);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the set holds `gtid`.
    pub fn contains(&self, gtid: MySqlGtid) -> bool {
        self.0.get(&gtid.uuid).is_some_and(|intervals| {
            intervals
                .iter()
                .any(|&(s, e)| s <= gtid.gno && gtid.gno < e)
        })
    }

    /// The transactions of `other` that this set lacks (`other` minus `self`): empty when
    /// `other` is contained in this set.
    pub fn missing(&self, other: &MySqlGtidSet) -> MySqlGtidSet {
        let mut out = BTreeMap::new();
        for (uuid, wanted) in &other.0 {
            let have = self.0.get(uuid).map_or(&[][..], Vec::as_slice);
            let mut lacking = Vec::new();
            for &(start, end) in wanted {
                let mut from = start;
                for &(s, e) in have {
                    if e <= from || s >= end {
                        continue;
                    }
                    if s > from {
                        lacking.push((from, s));
                    }
                    from = from.max(e);
                    if from >= end {
                        break;
                    }
                }
                if from < end {
                    lacking.push((from, end));
                }
            }
            if !lacking.is_empty() {
                out.insert(*uuid, lacking);
            }
        }
        MySqlGtidSet(out)
    }

    /// `(uuid, half-open intervals)` for `COM_BINLOG_DUMP_GTID`.
    pub fn sids(&self) -> impl Iterator<Item = (&[u8; 16], &[(u64, u64)])> {
        self.0.iter().map(|(u, i)| (u, i.as_slice()))
    }

    /// The set as `COM_BINLOG_DUMP_GTID`'s SID blocks (half-open intervals).
    pub fn to_sids(&self) -> Vec<mysql_common::packets::Sid<'static>> {
        use mysql_common::packets::{GnoInterval, Sid};
        self.sids()
            .map(|(uuid, intervals)| {
                Sid::new(*uuid).with_intervals(
                    intervals
                        .iter()
                        .map(|&(s, e)| GnoInterval::new(s, e))
                        .collect(),
                )
            })
            .collect()
    }
}

impl fmt::Display for MySqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (uuid, intervals)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&tributary_runtime::converter::json::format_uuid(uuid))?;
            for (s, e) in intervals {
                if e - 1 == *s {
                    write!(f, ":{s}")?;
                } else {
                    write!(f, ":{s}-{}", e - 1)?;
                }
            }
        }
        Ok(())
    }
}

/// Whether a stored `gtids` text is a MySQL GTID set (`uuid:intervals`) rather than a
/// MariaDB state (`domain-server-seq`, which never holds a colon).
pub fn is_mysql_gtid_set(text: &str) -> bool {
    text.contains(':')
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_gtid_event_and_list() {
        let mut data = 77u64.to_le_bytes().to_vec();
        data.extend_from_slice(&3u32.to_le_bytes());
        data.push(FL_STANDALONE);
        let ev = parse_gtid_event(&data, 9).expect("gtid");
        assert_eq!(ev.gtid.to_string(), "3-9-77");
        assert!(ev.standalone());
        assert_eq!(parse_gtid_event(&data[..10], 9), None, "short body");

        let mut list = (2u32 | 0x1000_0000).to_le_bytes().to_vec();
        for (d, s, n) in [(0u32, 1u32, 5u64), (2, 7, 9)] {
            list.extend_from_slice(&d.to_le_bytes());
            list.extend_from_slice(&s.to_le_bytes());
            list.extend_from_slice(&n.to_le_bytes());
        }
        let gtids = parse_gtid_list(&list).expect("list");
        let mut state = GtidState::default();
        for g in gtids {
            state.apply(g);
        }
        assert_eq!(state.to_string(), "0-1-5,2-7-9");
        assert_eq!(parse_gtid_list(&list[..20]), None);
    }

    #[test]
    fn gtid_state_round_trip_several_domains() {
        let mut s = GtidState::parse("1-2-7, 0-1-100").expect("parse");
        assert_eq!(s.to_string(), "0-1-100,1-2-7");
        s.apply(MariaGtid {
            domain: 1,
            server: 3,
            seq: 8,
        });
        assert_eq!(s.to_string(), "0-1-100,1-3-8");
        assert!(GtidState::parse("0-1").is_err());
        assert!(GtidState::parse("a-1-2").is_err());
        assert!(GtidState::parse("").expect("empty").is_empty());
    }

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn gtid(uuid: &str, gno: u64) -> MySqlGtid {
        MySqlGtid {
            uuid: parse_uuid(uuid).expect("uuid"),
            gno,
        }
    }

    #[test]
    fn mysql_gtid_sets() {
        let text = format!("{A}:1-5:7,{B}:1");
        let mut set = MySqlGtidSet::parse(&text).expect("parse");
        assert_eq!(set.to_string(), text);
        set.add(gtid(A, 6));
        assert_eq!(set.to_string(), format!("{A}:1-7,{B}:1"));
        let sids: Vec<_> = set.sids().collect();
        assert_eq!(sids[0].1, &[(1, 8)]);
        assert!(MySqlGtidSet::parse("nope:1").is_err());
        assert!(MySqlGtidSet::parse(&format!("{A}:5-2")).is_err());
        assert!(MySqlGtidSet::parse(&format!("{A}:0")).is_err());
        assert!(MySqlGtidSet::parse(&format!("{A}:x")).is_err());
        assert!(MySqlGtidSet::parse("").expect("empty").is_empty());
    }

    #[test]
    fn mysql_gtid_text() {
        // Lowercase, as MySQL and Debezium (mysql-binlog-connector-java) print it.
        let g = gtid("3E11FA47-71CA-11E1-9E33-C80AA9429562", 23);
        assert_eq!(g.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:23");
    }

    #[test]
    fn mysql_gtid_set_parse_normalizes_server_text() {
        // @@gtid_executed prints a newline after each comma, uppercase is accepted, and
        // overlapping or adjacent intervals are merged as MySQL merges them.
        let text = format!("{B}:3-4:1-2:9,\n{}:10-12:11:14", A.to_uppercase());
        let set = MySqlGtidSet::parse(&text).expect("parse");
        assert_eq!(set.to_string(), format!("{A}:10-12:14,{B}:1-4:9"));
    }

    #[test]
    fn mysql_gtid_set_accumulates_out_of_order_and_several_uuids() {
        let mut set = MySqlGtidSet::default();
        for (u, n) in [
            (A, 1),
            (A, 2),
            (B, 7),
            (A, 5),
            (A, 3),
            (B, 8),
            (A, 4),
            (B, 10),
        ] {
            set.add(gtid(u, n));
        }
        assert_eq!(set.to_string(), format!("{A}:1-5,{B}:7-8:10"));
        assert!(set.contains(gtid(B, 8)));
        assert!(!set.contains(gtid(B, 9)));
        assert!(!set.contains(gtid("5e11fa47-71ca-11e1-9e33-c80aa9429562", 1)));
        // Adding a transaction already in the set changes nothing.
        set.add(gtid(A, 3));
        assert_eq!(set.to_string(), format!("{A}:1-5,{B}:7-8:10"));
    }

    #[test]
    fn mysql_gtid_set_missing() {
        let ours = MySqlGtidSet::parse(&format!("{A}:1-10:20-30,{B}:5")).expect("ours");
        let purged = MySqlGtidSet::parse(&format!("{A}:1-5:8-22")).expect("purged");
        assert_eq!(ours.missing(&purged).to_string(), format!("{A}:11-19"));
        let purged = MySqlGtidSet::parse(&format!("{A}:1-10,{B}:1-5")).expect("purged");
        assert_eq!(ours.missing(&purged).to_string(), format!("{B}:1-4"));
        let purged = MySqlGtidSet::parse(&format!("{A}:2-9:25")).expect("purged");
        assert!(ours.missing(&purged).is_empty());
        assert!(ours.missing(&MySqlGtidSet::default()).is_empty());
        assert_eq!(
            MySqlGtidSet::default().missing(&ours).to_string(),
            ours.to_string()
        );
    }

    #[test]
    fn mysql_gtid_set_to_sids_matches_mysql_common() {
        use std::str::FromStr as _;

        use mysql_common::packets::{GnoInterval, Sid};
        let set = MySqlGtidSet::parse(&format!("{A}:1-5:7,{B}:3")).expect("parse");
        let sids = set.to_sids();
        // mysql_common's own parser of the text form gives the same SID blocks.
        let expected = [
            Sid::from_str(&format!("{A}:1-5:7")).expect("sid"),
            Sid::from_str(&format!("{B}:3")).expect("sid"),
        ];
        assert_eq!(sids, expected);
        // Half-open on the wire: `1-5` is [1, 6), `7` is [7, 8).
        assert_eq!(
            sids[0].intervals(),
            &[GnoInterval::new(1, 6), GnoInterval::new(7, 8)]
        );
        assert_eq!(sids[1].uuid(), parse_uuid(B).expect("uuid"));
        assert!(MySqlGtidSet::default().to_sids().is_empty());
    }

    #[test]
    fn stored_text_kinds() {
        assert!(is_mysql_gtid_set(&format!("{A}:1-5")));
        assert!(!is_mysql_gtid_set("0-1-100,1-2-7"));
        assert!(!is_mysql_gtid_set(""));
    }
}
