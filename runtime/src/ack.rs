//! The commit-order invariant: a source position becomes committable only when every record
//! produced before it is durable.
//!
//! Records are tracked in the order the source task produced them, across all of the task's
//! source partitions. Delivery acknowledgements may arrive in any order (a Kafka producer acks
//! topic partitions independently; the embedded log acks whole batches), but the committable
//! offsets only ever move with the *contiguous* acknowledged prefix of that one sequence. A
//! record of one source partition therefore never commits ahead of an earlier record of
//! another: a connector may keep related positions in two partitions (the MySQL source's
//! position and its schema history) and rely on them being committed in record order, as
//! Kafka Connect's offset flush does. This is the one place where that rule lives; the source
//! runner (`worker::source`) commits exactly what [`AckTracker::take_committable`] returns.

use std::collections::{HashMap, VecDeque};

use crate::record::{SourceOffset, SourcePartition};

/// Identifies one tracked record: its place in the task's production order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordId {
    seq: u64,
}

#[derive(Debug)]
struct Slot {
    acked: bool,
    /// Index of the record's source partition in [`AckTracker::partitions`].
    partition: u32,
    offset: Option<SourceOffset>,
}

#[derive(Debug)]
struct PartitionTrack {
    partition: SourcePartition,
    /// Offset of the last record of the acknowledged prefix not yet taken for commit, with
    /// that record's sequence number.
    committable: Option<(u64, SourceOffset)>,
}

/// Tracks in-flight source records and yields the offsets that are safe to commit.
#[derive(Debug, Default)]
pub struct AckTracker {
    partitions: Vec<PartitionTrack>,
    index: HashMap<SourcePartition, u32>,
    /// The partition of the previous record: sources send long runs of one partition.
    last: Option<u32>,
    /// Sequence number of `pending[0]`.
    base_seq: u64,
    pending: VecDeque<Slot>,
    in_flight: usize,
}

impl AckTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the next record of `partition`, in production order.
    pub fn track(&mut self, partition: &SourcePartition, offset: Option<SourceOffset>) -> RecordId {
        let slot = self.partition_slot(partition);
        let seq = self.base_seq + self.pending.len() as u64;
        self.pending.push_back(Slot {
            acked: false,
            partition: slot,
            offset,
        });
        self.in_flight += 1;
        RecordId { seq }
    }

    fn partition_slot(&mut self, partition: &SourcePartition) -> u32 {
        if let Some(last) = self.last
            && self.partitions[last as usize].partition == *partition
        {
            return last;
        }
        let slot = match self.index.get(partition) {
            Some(&slot) => slot,
            None => {
                let slot = u32::try_from(self.partitions.len()).unwrap_or(u32::MAX);
                self.partitions.push(PartitionTrack {
                    partition: partition.clone(),
                    committable: None,
                });
                self.index.insert(partition.clone(), slot);
                slot
            }
        };
        self.last = Some(slot);
        slot
    }

    /// Marks a record durable. Acknowledging a record twice, or one never tracked, is a no-op.
    pub fn ack(&mut self, id: RecordId) {
        let Some(index) = id.seq.checked_sub(self.base_seq) else {
            return;
        };
        let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| self.pending.get_mut(i))
        else {
            return;
        };
        if slot.acked {
            return;
        }
        slot.acked = true;
        self.in_flight -= 1;
        // Advance over the contiguous acknowledged prefix.
        while self.pending.front().is_some_and(|s| s.acked) {
            if let Some(done) = self.pending.pop_front() {
                let seq = self.base_seq;
                self.base_seq += 1;
                if let Some(offset) = done.offset
                    && let Some(track) = self.partitions.get_mut(done.partition as usize)
                {
                    track.committable = Some((seq, offset));
                }
            }
        }
    }

    /// Offsets that became committable since the last call, one per source partition, in
    /// the order their records were produced: an offset store that cannot write them
    /// atomically writes them in this order, so a crash between two writes leaves the
    /// earlier position stored, never the later one alone.
    pub fn take_committable(&mut self) -> Vec<(SourcePartition, SourceOffset)> {
        let mut taken: Vec<_> = self
            .partitions
            .iter_mut()
            .filter_map(|t| {
                t.committable
                    .take()
                    .map(|(seq, o)| (seq, t.partition.clone(), o))
            })
            .collect();
        taken.sort_unstable_by_key(|(seq, ..)| *seq);
        taken.into_iter().map(|(_, p, o)| (p, o)).collect()
    }

    /// Records tracked but not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::OffsetOrder;
    use proptest::prelude::*;

    fn offset(n: u64) -> SourceOffset {
        SourceOffset {
            value: serde_json::json!({ "seq": n }),
            order: OffsetOrder([n, 0, 0]),
        }
    }

    fn partition(name: &str) -> SourcePartition {
        SourcePartition::from_json(&serde_json::json!({ "p": name }))
    }

    #[test]
    fn out_of_order_acks_commit_only_the_contiguous_prefix() {
        let mut t = AckTracker::new();
        let p = partition("a");
        let ids: Vec<_> = (0..5).map(|n| t.track(&p, Some(offset(n)))).collect();
        t.ack(ids[1]);
        t.ack(ids[2]);
        assert!(
            t.take_committable().is_empty(),
            "record 0 is not durable yet"
        );
        t.ack(ids[0]);
        assert_eq!(t.take_committable(), vec![(p.clone(), offset(2))]);
        assert!(t.take_committable().is_empty(), "taken once");
        t.ack(ids[4]);
        assert!(t.take_committable().is_empty());
        t.ack(ids[3]);
        assert_eq!(t.take_committable(), vec![(p, offset(4))]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn partitions_commit_in_one_record_order() {
        let mut t = AckTracker::new();
        let (a, b) = (partition("a"), partition("b"));
        let a0 = t.track(&a, Some(offset(0)));
        let b0 = t.track(&b, Some(offset(10)));
        let a1 = t.track(&a, Some(offset(1)));
        let b1 = t.track(&b, Some(offset(11)));
        t.ack(b0);
        t.ack(a1);
        assert!(
            t.take_committable().is_empty(),
            "b's record came after a0, which is not durable"
        );
        t.ack(a0);
        assert_eq!(
            t.take_committable(),
            vec![(b.clone(), offset(10)), (a.clone(), offset(1))],
            "in the order of the committed records: b0 before a1"
        );
        t.ack(b1);
        assert_eq!(t.take_committable(), vec![(b, offset(11))]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn records_without_offset_hold_the_line_but_do_not_commit() {
        let mut t = AckTracker::new();
        let p = partition("a");
        let r0 = t.track(&p, Some(offset(0)));
        let r1 = t.track(&p, None);
        let r2 = t.track(&p, None);
        t.ack(r0);
        t.ack(r2);
        assert_eq!(t.take_committable(), vec![(p.clone(), offset(0))]);
        t.ack(r1);
        assert!(
            t.take_committable().is_empty(),
            "no new offset in the prefix"
        );
    }

    #[test]
    fn duplicate_and_unknown_acks_are_ignored() {
        let mut t = AckTracker::new();
        let p = partition("a");
        let r0 = t.track(&p, Some(offset(0)));
        t.ack(r0);
        t.ack(r0);
        assert_eq!(t.in_flight(), 0);
        t.ack(RecordId { seq: 3 });
    }

    proptest! {
        /// Whatever the ack order, after each ack the committed offset equals the length of
        /// the acknowledged prefix, and it never moves backward.
        #[test]
        fn commits_follow_the_contiguous_prefix(order in Just((0..64u64).collect::<Vec<_>>()).prop_shuffle()) {
            let mut t = AckTracker::new();
            let p = partition("a");
            let ids: Vec<_> = (0..64).map(|n| t.track(&p, Some(offset(n)))).collect();
            let mut acked = [false; 64];
            let mut last_committed: Option<u64> = None;
            for n in order {
                t.ack(ids[n as usize]);
                acked[n as usize] = true;
                let prefix = acked.iter().take_while(|a| **a).count() as u64;
                for (_, off) in t.take_committable() {
                    let seq = off.order.0[0];
                    prop_assert_eq!(seq + 1, prefix);
                    prop_assert!(last_committed.is_none_or(|l| seq > l));
                    last_committed = Some(seq);
                }
                prop_assert_eq!(last_committed.map_or(0, |l| l + 1), prefix);
            }
            prop_assert_eq!(last_committed, Some(63));
        }

        /// With records of three partitions interleaved, each partition's committed offset is
        /// its last record inside the acknowledged prefix of the one production order.
        #[test]
        fn partitions_follow_the_global_prefix(
            owners in proptest::collection::vec(0usize..3, 48),
            order in Just((0..48usize).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let mut t = AckTracker::new();
            let parts = [partition("a"), partition("b"), partition("c")];
            let ids: Vec<_> = owners
                .iter()
                .enumerate()
                .map(|(n, &p)| t.track(&parts[p], Some(offset(n as u64))))
                .collect();
            let mut acked = [false; 48];
            let mut committed: [Option<u64>; 3] = [None; 3];
            for n in order {
                t.ack(ids[n]);
                acked[n] = true;
                for (p, off) in t.take_committable() {
                    let k = parts.iter().position(|q| *q == p).expect("known partition");
                    committed[k] = Some(off.order.0[0]);
                }
                let prefix = acked.iter().take_while(|a| **a).count();
                for (k, got) in committed.iter().enumerate() {
                    let expected = (0..prefix).rev().find(|&r| owners[r] == k).map(|r| r as u64);
                    prop_assert_eq!(*got, expected);
                }
            }
        }
    }
}
