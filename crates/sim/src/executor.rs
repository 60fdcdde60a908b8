//! A single-threaded executor whose every choice belongs to the simulator.
//!
//! A runtime such as tokio decides which task runs next, and with several threads it decides
//! differently on every run. Here the simulator asks which tasks are runnable and polls the
//! one its seeded PRNG picks, so the interleaving of two payments on one node, of a Prepare
//! with a status query, of a crash with a write, is part of the seed and replays exactly.
//!
//! Each task belongs to an owner (a node). Crashing a node is [`Executor::kill`]: its tasks are
//! dropped where they stand, at whichever `.await` they were parked on — exactly the points
//! at which a real process can die with respect to the code's own view of its state.
//!
//! Wakers only mark a task runnable (an ordered set, so the runnable list has one order); a
//! waker that outlives its task marks nothing that can run.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Wake, Waker};

/// A task's number, in spawn order.
pub type TaskId = u64;

/// One spawned future and who it belongs to.
struct Task<O> {
    owner: O,
    future: Pin<Box<dyn Future<Output = ()>>>,
}

/// The tasks of every simulated node.
pub struct Executor<O> {
    tasks: BTreeMap<TaskId, Task<O>>,
    woken: Arc<Mutex<BTreeSet<TaskId>>>,
    next: TaskId,
}

impl<O> std::fmt::Debug for Executor<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl<O> Default for Executor<O> {
    fn default() -> Self {
        Self {
            tasks: BTreeMap::new(),
            woken: Arc::default(),
            next: 0,
        }
    }
}

/// Marks its task runnable.
struct TaskWaker {
    id: TaskId,
    woken: Arc<Mutex<BTreeSet<TaskId>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.id);
    }
}

impl<O: Copy + Eq> Executor<O> {
    /// An executor without tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a task for `owner`, runnable at once.
    pub fn spawn(&mut self, owner: O, future: impl Future<Output = ()> + 'static) -> TaskId {
        let id = self.next;
        self.next += 1;
        self.tasks.insert(
            id,
            Task {
                owner,
                future: Box::pin(future),
            },
        );
        self.lock_woken().insert(id);
        id
    }

    /// The tasks that may make progress if polled, in id order.
    pub fn runnable(&self) -> Vec<TaskId> {
        self.lock_woken()
            .iter()
            .copied()
            .filter(|id| self.tasks.contains_key(id))
            .collect()
    }

    /// Polls task `id` once; `true` when it finished (and is gone). Polling a task that is not
    /// runnable is allowed (a spurious wake-up, which every future must tolerate).
    pub fn poll(&mut self, id: TaskId) -> bool {
        self.lock_woken().remove(&id);
        let Some(task) = self.tasks.get_mut(&id) else {
            return false;
        };
        let waker = Waker::from(Arc::new(TaskWaker {
            id,
            woken: Arc::clone(&self.woken),
        }));
        let mut cx = Context::from_waker(&waker);
        if task.future.as_mut().poll(&mut cx).is_ready() {
            self.tasks.remove(&id);
            return true;
        }
        false
    }

    /// Drops every task of `owner` where it stands (a crash); returns how many there were.
    pub fn kill(&mut self, owner: O) -> usize {
        let doomed: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, task)| task.owner == owner)
            .map(|(id, _)| *id)
            .collect();
        for id in &doomed {
            // Dropping a future runs its destructors (lock guards, channel ends), which may
            // wake other tasks: exactly what a dying process does to its peers' connections.
            self.tasks.remove(id);
        }
        doomed.len()
    }

    /// Tasks alive (runnable or parked).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is alive.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Tasks alive of `owner`.
    pub fn tasks_of(&self, owner: O) -> usize {
        self.tasks.values().filter(|t| t.owner == owner).count()
    }

    fn lock_woken(&self) -> std::sync::MutexGuard<'_, BTreeSet<TaskId>> {
        self.woken.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use std::task::Poll;

    use super::*;

    /// A future that is pending until `open` is set, then ready.
    struct Gate {
        open: Rc<RefCell<(bool, Option<Waker>)>>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut state = self.open.borrow_mut();
            if state.0 {
                Poll::Ready(())
            } else {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    #[test]
    fn a_parked_task_runs_again_only_after_its_wake() {
        let mut executor = Executor::new();
        let open = Rc::new(RefCell::new((false, None::<Waker>)));
        let log = Rc::new(RefCell::new(Vec::new()));
        let (gate, task_log) = (
            Gate {
                open: Rc::clone(&open),
            },
            Rc::clone(&log),
        );
        let id = executor.spawn(1u8, async move {
            task_log.borrow_mut().push("before");
            gate.await;
            task_log.borrow_mut().push("after");
        });
        assert_eq!(executor.runnable(), [id]);
        assert!(!executor.poll(id));
        assert!(executor.runnable().is_empty(), "parked on the gate");
        open.borrow_mut().0 = true;
        let waker = open.borrow_mut().1.take().expect("the task left a waker");
        waker.wake();
        assert_eq!(executor.runnable(), [id]);
        assert!(executor.poll(id));
        assert_eq!(*log.borrow(), ["before", "after"]);
        assert!(executor.is_empty());
    }

    #[test]
    fn kill_drops_only_the_owners_tasks_where_they_stand() {
        let mut executor = Executor::new();
        let dropped = Rc::new(RefCell::new(Vec::new()));
        for owner in [1u8, 2, 1] {
            let open = Rc::new(RefCell::new((false, None)));
            let guard = DropLog(owner, Rc::clone(&dropped));
            executor.spawn(owner, async move {
                let _guard = guard;
                Gate { open }.await;
            });
        }
        for id in executor.runnable() {
            executor.poll(id);
        }
        assert_eq!(executor.kill(1), 2);
        assert_eq!(
            *dropped.borrow(),
            [1, 1],
            "node 1's tasks unwound, node 2's kept"
        );
        assert_eq!((executor.len(), executor.tasks_of(2)), (1, 1));
    }

    #[test]
    fn a_wake_after_the_task_is_gone_makes_nothing_runnable() {
        let mut executor = Executor::new();
        let open = Rc::new(RefCell::new((false, None::<Waker>)));
        let gate = Gate {
            open: Rc::clone(&open),
        };
        let id = executor.spawn(1u8, gate);
        executor.poll(id);
        executor.kill(1);
        let waker = open.borrow_mut().1.take().expect("waker");
        waker.wake();
        assert!(executor.runnable().is_empty());
        assert!(!executor.poll(id));
    }

    struct DropLog(u8, Rc<RefCell<Vec<u8>>>);

    impl Drop for DropLog {
        fn drop(&mut self) {
            self.1.borrow_mut().push(self.0);
        }
    }
}
