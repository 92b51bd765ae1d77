//! The work queue, as client-go's: a key is queued at most once however often it is
//! added, is never handed to two workers at once (added while being worked on, it is
//! handed out again once the work is done), and comes back after a delay — the one a
//! reconcile asked for, or an exponential back-off after each failure in a row.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The first retry's delay after a failure, doubled on each failure in a row up to the
/// last: client-go's and kube-runtime's defaults.
pub(crate) const BACKOFF: (Duration, Duration) =
    (Duration::from_millis(5), Duration::from_secs(1000));

/// How a key's work ended, which decides when it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done until something changes.
    Done,
    /// Done, and to be looked at again after this long.
    RequeueAfter(Duration),
    /// Failed: back after the key's next back-off.
    Failed,
}

/// Keys waiting to be worked on, shared by the workers of one controller.
pub(crate) struct WorkQueue<T> {
    state: Mutex<State<T>>,
    wake: Notify,
}

struct State<T> {
    /// Keys to hand out, in the order they came.
    ready: VecDeque<T>,
    /// Keys added and not handed out since: queued, or waiting for their work to end.
    dirty: HashSet<T>,
    /// Keys a worker holds.
    processing: HashSet<T>,
    /// Keys due later, by when; `due` holds each key's earliest, so a later timer of the
    /// same key is skipped when it fires.
    timers: BTreeMap<(Instant, u64), T>,
    due: HashMap<T, Instant>,
    sequence: u64,
    /// Failures in a row, by key.
    failures: HashMap<T, u32>,
}

impl<T: Hash + Eq + Clone> Default for WorkQueue<T> {
    fn default() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                timers: BTreeMap::new(),
                due: HashMap::new(),
                sequence: 0,
                failures: HashMap::new(),
            }),
            wake: Notify::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> WorkQueue<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` now, unless it already waits.
    pub(crate) fn add(&self, key: T) {
        if self.lock().add(key) {
            self.wake.notify_one();
        }
    }

    /// The next key to work on, once one is due; the caller owns it until `done`.
    pub(crate) async fn next(&self) -> T {
        loop {
            let notified = self.wake.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let next_timer = {
                let mut state = self.lock();
                state.promote_due(Instant::now());
                if let Some(key) = state.take() {
                    return key;
                }
                state.timers.keys().next().map(|(at, _)| *at)
            };
            match next_timer {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Ends the work on `key`: it comes back when the outcome says, or at once if it was
    /// added while being worked on.
    pub(crate) fn done(&self, key: &T, outcome: Outcome) {
        let mut state = self.lock();
        state.processing.remove(key);
        let delay = match outcome {
            Outcome::Done => {
                state.failures.remove(key);
                None
            }
            Outcome::RequeueAfter(delay) => {
                state.failures.remove(key);
                Some(delay)
            }
            Outcome::Failed => {
                let failures = state.failures.entry(key.clone()).or_insert(0);
                *failures = failures.saturating_add(1);
                Some(backoff(*failures))
            }
        };
        let mut woken = false;
        if state.dirty.contains(key) {
            state.ready.push_back(key.clone());
            woken = true;
        }
        if let Some(delay) = delay {
            state.add_at(key.clone(), Instant::now() + delay);
            woken = true;
        }
        drop(state);
        if woken {
            self.wake.notify_one();
        }
    }

    /// How many keys are queued or due later (not those being worked on).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        let state = self.lock();
        state.ready.len() + state.due.len()
    }
}

impl<T: Hash + Eq + Clone> State<T> {
    /// Marks `key` to be handed out; whether it was queued (not already waiting, and
    /// not held by a worker, who will queue it when done).
    fn add(&mut self, key: T) -> bool {
        if self.dirty.contains(&key) {
            return false;
        }
        self.dirty.insert(key.clone());
        if self.processing.contains(&key) {
            return false;
        }
        self.ready.push_back(key);
        true
    }

    fn add_at(&mut self, key: T, at: Instant) {
        if self.due.get(&key).is_some_and(|due| *due <= at) {
            return;
        }
        self.due.insert(key.clone(), at);
        self.sequence += 1;
        self.timers.insert((at, self.sequence), key);
    }

    /// Queues the keys whose time has come.
    fn promote_due(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            let (at, _) = *entry.key();
            if at > now {
                break;
            }
            let key = entry.remove();
            if self.due.get(&key) == Some(&at) {
                self.due.remove(&key);
                self.add(key);
            }
        }
    }

    /// Hands out the first queued key.
    fn take(&mut self) -> Option<T> {
        let key = self.ready.pop_front()?;
        self.dirty.remove(&key);
        self.processing.insert(key.clone());
        Some(key)
    }
}

/// The delay after `failures` failures in a row.
fn backoff(failures: u32) -> Duration {
    let (first, longest) = BACKOFF;
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
    first.saturating_mul(factor).min(longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_added_twice_is_handed_out_once() {
        let queue = WorkQueue::default();
        queue.add("a");
        queue.add("b");
        queue.add("a");
        assert_eq!(queue.next().await, "a");
        assert_eq!(queue.next().await, "b");
        assert_eq!(queue.waiting(), 0);
    }

    #[tokio::test]
    async fn a_key_added_while_worked_on_comes_back_after_the_work() {
        let queue = WorkQueue::default();
        queue.add("a");
        let key = queue.next().await;
        queue.add("a");
        assert_eq!(queue.waiting(), 0, "not handed to a second worker");
        queue.done(&key, Outcome::Done);
        assert_eq!(queue.next().await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_success_forgets_them() {
        let queue = WorkQueue::default();
        queue.add("a");
        let start = Instant::now();
        for expected in [0, 5, 15, 35] {
            let key = queue.next().await;
            assert_eq!(start.elapsed(), Duration::from_millis(expected));
            queue.done(&key, Outcome::Failed);
        }
        let key = queue.next().await;
        queue.done(&key, Outcome::RequeueAfter(Duration::from_secs(2)));
        let before = Instant::now();
        let key = queue.next().await;
        assert_eq!(before.elapsed(), Duration::from_secs(2));
        queue.done(&key, Outcome::Failed);
        let before = Instant::now();
        queue.next().await;
        assert_eq!(before.elapsed(), BACKOFF.0, "the count started again");
    }

    #[test]
    fn back_off_stops_growing_at_its_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(5));
        assert_eq!(backoff(3), Duration::from_millis(20));
        assert_eq!(backoff(40), BACKOFF.1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sooner_requeue_wins_over_a_later_one() {
        let queue = WorkQueue::default();
        let start = Instant::now();
        queue.lock().add_at("a", start + Duration::from_secs(10));
        queue.lock().add_at("a", start + Duration::from_secs(1));
        queue.next().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(queue.waiting(), 0, "the later timer was dropped");
    }
}
