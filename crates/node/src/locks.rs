//! Per-UETR mutual exclusion. Every decision about one payment (submit, Prepare, a status
//! query, recovery) runs while holding its UETR's lock, so a status query can never fence a
//! UETR while a Prepare for it is between its checks and its credit, and one payment is never
//! reserved twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kakehashi_protocol::instruction::Uetr;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Lazily created locks, one per UETR in use, dropped when their last user is done.
#[derive(Debug, Default)]
pub(crate) struct UetrLocks {
    map: Mutex<HashMap<Uetr, Arc<AsyncMutex<()>>>>,
}

/// Holds a UETR's lock; releases it (and forgets the lock if nobody else waits) on drop.
#[derive(Debug)]
pub(crate) struct UetrGuard<'a> {
    locks: &'a UetrLocks,
    uetr: Uetr,
    guard: Option<OwnedMutexGuard<()>>,
}

impl UetrLocks {
    /// Waits for and takes the lock of `uetr`.
    pub(crate) async fn lock(&self, uetr: Uetr) -> UetrGuard<'_> {
        let mutex = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(map.entry(uetr).or_default())
        };
        let guard = mutex.lock_owned().await;
        UetrGuard {
            locks: self,
            uetr,
            guard: Some(guard),
        }
    }

    /// How many UETRs currently have a lock object (held or awaited).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Whether no UETR is locked (the tests check that locks are forgotten).
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for UetrGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self
            .locks
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Only the map holds the Arc when nobody holds or awaits the lock.
        if map
            .get(&self.uetr)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            map.remove(&self.uetr);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_holder_per_uetr_at_a_time() {
        let locks = Arc::new(UetrLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let locks = Arc::clone(&locks);
            let inside = Arc::clone(&inside);
            tasks.push(tokio::spawn(async move {
                let _guard = locks.lock(Uetr([9; 16])).await;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                tokio::time::sleep(Duration::from_millis(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert!(locks.is_empty(), "locks are forgotten once released");
    }

    #[tokio::test]
    async fn different_uetrs_do_not_wait_for_each_other() {
        let locks = UetrLocks::default();
        let _a = locks.lock(Uetr([1; 16])).await;
        let b = tokio::time::timeout(Duration::from_secs(5), locks.lock(Uetr([2; 16]))).await;
        assert!(b.is_ok());
    }
}
