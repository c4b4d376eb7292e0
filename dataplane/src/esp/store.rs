//! A worker's own SAs. The control thread creates an SA (keys expanded off the fast path) and
//! sends it to the owning worker as a command; the worker installs it at a burst boundary and
//! from then on is its only writer. Removed SAs go back to the control thread to be freed, so
//! a worker never deallocates.

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
    Install { slot: u32, sa: Box<OwnedSa> },
    Remove { slot: u32 },
}

/// The SAs one worker owns, by slot.
#[derive(Default)]
pub struct SaStore {
    slots: Vec<Option<Box<OwnedSa>>>,
}

impl SaStore {
    /// Apply pending commands; removed SAs are returned through `retired` (if it is full,
    /// the SA is dropped here — rare, and only on a control-plane action).
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
                SaCmd::Remove { slot } => {
                    if let Some(old) = self.slots.get_mut(slot as usize).and_then(Option::take) {
                        let _ = retired.push(old);
                    }
                }
            }
        }
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
