//! The commit-order invariant: a source position becomes committable only when every record
//! up to it is durable.
//!
//! Records are tracked in the order the source task produced them, per source partition.
//! Delivery acknowledgements may arrive in any order (a Kafka producer acks partitions
//! independently; the embedded log acks whole batches), but the committable offset of a
//! source partition only ever moves to the offset of the last record of the *contiguous*
//! acknowledged prefix. This is the one place where that rule lives; the source runner
//! (`worker::source`) commits exactly what [`AckTracker::take_committable`] returns.

use std::collections::{HashMap, VecDeque};

use crate::record::{SourceOffset, SourcePartition};

/// Identifies one tracked record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordId {
    partition: u32,
    seq: u64,
}

#[derive(Debug)]
struct Slot {
    acked: bool,
    offset: Option<SourceOffset>,
}

#[derive(Debug)]
struct PartitionTrack {
    partition: SourcePartition,
    /// Sequence number of `pending[0]`.
    base_seq: u64,
    pending: VecDeque<Slot>,
    /// Offset of the last record of the acknowledged prefix not yet taken for commit.
    committable: Option<SourceOffset>,
}

/// Tracks in-flight source records and yields the offsets that are safe to commit.
#[derive(Debug, Default)]
pub struct AckTracker {
    partitions: Vec<PartitionTrack>,
    index: HashMap<SourcePartition, u32>,
    in_flight: usize,
}

impl AckTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the next record of `partition`, in production order.
    pub fn track(&mut self, partition: &SourcePartition, offset: Option<SourceOffset>) -> RecordId {
        let slot = self.partition_slot(partition);
        let track = &mut self.partitions[slot as usize];
        let seq = track.base_seq + track.pending.len() as u64;
        track.pending.push_back(Slot {
            acked: false,
            offset,
        });
        self.in_flight += 1;
        RecordId {
            partition: slot,
            seq,
        }
    }

    fn partition_slot(&mut self, partition: &SourcePartition) -> u32 {
        if let Some(&slot) = self.index.get(partition) {
            return slot;
        }
        let slot = u32::try_from(self.partitions.len()).unwrap_or(u32::MAX);
        self.partitions.push(PartitionTrack {
            partition: partition.clone(),
            base_seq: 0,
            pending: VecDeque::new(),
            committable: None,
        });
        self.index.insert(partition.clone(), slot);
        slot
    }

    /// Marks a record durable. Acknowledging a record twice, or one never tracked, is a no-op.
    pub fn ack(&mut self, id: RecordId) {
        let Some(track) = self.partitions.get_mut(id.partition as usize) else {
            return;
        };
        let Some(index) = id.seq.checked_sub(track.base_seq) else {
            return;
        };
        let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| track.pending.get_mut(i))
        else {
            return;
        };
        if slot.acked {
            return;
        }
        slot.acked = true;
        self.in_flight -= 1;
        // Advance over the contiguous acknowledged prefix.
        while track.pending.front().is_some_and(|s| s.acked) {
            if let Some(done) = track.pending.pop_front() {
                track.base_seq += 1;
                if done.offset.is_some() {
                    track.committable = done.offset;
                }
            }
        }
    }

    /// Offsets that became committable since the last call, one per source partition.
    pub fn take_committable(&mut self) -> Vec<(SourcePartition, SourceOffset)> {
        self.partitions
            .iter_mut()
            .filter_map(|t| t.committable.take().map(|o| (t.partition.clone(), o)))
            .collect()
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
    fn partitions_are_independent() {
        let mut t = AckTracker::new();
        let (a, b) = (partition("a"), partition("b"));
        let a0 = t.track(&a, Some(offset(0)));
        let b0 = t.track(&b, Some(offset(10)));
        let a1 = t.track(&a, Some(offset(1)));
        t.ack(b0);
        t.ack(a1);
        assert_eq!(t.take_committable(), vec![(b.clone(), offset(10))]);
        t.ack(a0);
        assert_eq!(t.take_committable(), vec![(a, offset(1))]);
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
        t.ack(RecordId {
            partition: 7,
            seq: 3,
        });
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
    }
}
