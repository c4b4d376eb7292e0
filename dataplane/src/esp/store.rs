//! A worker's own SAs. The control thread creates an SA (keys expanded off the fast path) and
//! sends it to the owning worker as a command; the worker installs it at a burst boundary and
//! from then on is its only writer. Removed SAs go back to the control thread to be freed, so
//! a worker never deallocates.
//!
//! Removal is two-step so that make-before-break holds across workers: the control thread
//! sends `Remove` only once every worker runs tables that no longer name the slot, but a packet
//! another worker classified with the older tables may still sit in this worker's hand-off
//! ring. So `apply` only notes a removal; the worker drains what its ring held at that moment
//! and then calls [`SaStore::finish_removals`].

use super::sa::Sa;
use crate::outer::OuterPolicy;
use crossbeam::queue::ArrayQueue;

/// An SA with the outer-header policy (TTL, DSCP/ECN, DF) used when it encapsulates.
pub struct OwnedSa {
    pub sa: Sa,
    pub outer: OuterPolicy,
}

/// Depth of each worker's SA command queue.
pub const SA_COMMANDS: usize = 1024;

/// What the control thread asks of a worker's SA store.
pub enum SaCmd {
    Install {
        slot: u32,
        sa: Box<OwnedSa>,
    },
    Remove {
        slot: u32,
    },
    /// Stop the SA (hard lifetime in seconds reached); it stays installed and refuses packets.
    Expire {
        slot: u32,
    },
}

/// The SAs one worker owns, by slot.
pub struct SaStore {
    slots: Vec<Option<Box<OwnedSa>>>,
    /// Slots to remove once the hand-off ring has been drained (capacity reserved up front:
    /// one `apply` pops at most `SA_COMMANDS` commands).
    pending: Vec<u32>,
}

impl Default for SaStore {
    fn default() -> Self {
        SaStore {
            slots: Vec::new(),
            pending: Vec::with_capacity(SA_COMMANDS),
        }
    }
}

impl SaStore {
    /// Apply pending commands. Installs and expiries take effect now; removals are noted and
    /// done by [`SaStore::finish_removals`].
    pub fn apply(&mut self, cmds: &ArrayQueue<SaCmd>, retired: &ArrayQueue<Box<OwnedSa>>) {
        while let Some(c) = cmds.pop() {
            match c {
                SaCmd::Install { slot, sa } => {
                    let i = slot as usize;
                    if self.slots.len() <= i {
                        self.slots.resize_with(i + 1, || None);
                    }
                    if let Some(old) = self.slots[i].replace(sa) {
                        let _ = retired.push(old);
                    }
                }
                SaCmd::Remove { slot } => self.pending.push(slot),
                SaCmd::Expire { slot } => {
                    if let Some(s) = self.get_mut(slot) {
                        s.sa.expire();
                    }
                }
            }
        }
    }

    /// True when removals wait for the hand-off ring to be drained.
    #[inline]
    pub fn removals_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Remove the noted slots; the SAs go back through `retired` (if it is full, the SA is
    /// dropped here — rare, and only on a control-plane action).
    pub fn finish_removals(&mut self, retired: &ArrayQueue<Box<OwnedSa>>) {
        for slot in self.pending.drain(..) {
            if let Some(old) = self.slots.get_mut(slot as usize).and_then(Option::take) {
                let _ = retired.push(old);
            }
        }
    }

    #[inline]
    pub fn get(&self, slot: u32) -> Option<&OwnedSa> {
        self.slots.get(slot as usize).and_then(|s| s.as_deref())
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut OwnedSa> {
        self.slots
            .get_mut(slot as usize)
            .and_then(|s| s.as_deref_mut())
    }

    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esp::{AesKeyLen, Mode, SaConfig, Suite};

    fn owned(spi: u32) -> Box<OwnedSa> {
        let cfg = SaConfig::new(spi, Mode::Transport, Suite::AesGcm(AesKeyLen::Aes128));
        Box::new(OwnedSa {
            sa: Sa::new(&cfg, &[1; 20], &[]).unwrap(),
            outer: OuterPolicy::default(),
        })
    }

    #[test]
    fn removal_waits_for_finish_and_expiry_is_immediate() {
        let cmds = ArrayQueue::new(8);
        let retired = ArrayQueue::new(8);
        let mut st = SaStore::default();
        assert!(cmds
            .push(SaCmd::Install {
                slot: 3,
                sa: owned(300)
            })
            .is_ok());
        assert!(cmds
            .push(SaCmd::Install {
                slot: 1,
                sa: owned(100)
            })
            .is_ok());
        st.apply(&cmds, &retired);
        assert_eq!(st.len(), 2);
        assert!(cmds.push(SaCmd::Expire { slot: 1 }).is_ok());
        assert!(cmds.push(SaCmd::Remove { slot: 3 }).is_ok());
        st.apply(&cmds, &retired);
        assert!(st.get_mut(1).unwrap().sa.hard_expired());
        // Still there until the worker has drained its hand-off ring.
        assert!(st.removals_pending());
        assert_eq!(st.get_mut(3).unwrap().sa.spi(), 300);
        st.finish_removals(&retired);
        assert!(st.get_mut(3).is_none());
        assert!(!st.removals_pending());
        assert_eq!(retired.len(), 1);
        // Removing an unknown slot is harmless.
        assert!(cmds.push(SaCmd::Remove { slot: 99 }).is_ok());
        st.apply(&cmds, &retired);
        st.finish_removals(&retired);
        assert_eq!(st.len(), 1);
    }
}
