//! One NOTIFY at a time per notifier dialog.
//!
//! A partner's `subscribed` is usually followed at once by its presence (RFC 6121 §3.1.5), so
//! the gateway produces NOTIFY active and a NOTIFY with PIDF back to back. Simple user agents
//! (SIPp among them) abort a dialog on a NOTIFY that arrives while they still answer the
//! previous one, so the next NOTIFY of a dialog leaves only once the previous one's transaction
//! ended (any final response, Timer F or a transport failure). Sans-IO; the gateway calls
//! [`NotifyQueue::offer`] before sending and [`NotifyQueue::done`] when a NOTIFY ended.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// NOTIFYs queued behind one in flight, per dialog, at most this many; beyond it the oldest
/// queued one is dropped (presence is latest-wins, and the final `terminated` NOTIFY is always
/// the newest). CSeq gaps are allowed (RFC 3261 §12.2.1.1).
pub const MAX_QUEUED: usize = 16;

/// The queue; `K` names a dialog, `T` is what gets sent.
#[derive(Debug)]
pub struct NotifyQueue<K, T> {
    /// A dialog present here has a NOTIFY in flight; its value is what waits behind it.
    busy: HashMap<K, VecDeque<T>>,
    dropped: u64,
}

impl<K: Hash + Eq + Clone, T> Default for NotifyQueue<K, T> {
    fn default() -> Self {
        NotifyQueue {
            busy: HashMap::new(),
            dropped: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, T> NotifyQueue<K, T> {
    /// A NOTIFY of `dialog` is ready: returned to send now when the dialog has none in flight
    /// (it is then in flight), else queued (`None`).
    pub fn offer(&mut self, dialog: &K, item: T) -> Option<T> {
        match self.busy.get_mut(dialog) {
            None => {
                self.busy.insert(dialog.clone(), VecDeque::new());
                Some(item)
            }
            Some(q) => {
                if q.len() >= MAX_QUEUED {
                    q.pop_front();
                    self.dropped += 1;
                }
                q.push_back(item);
                None
            }
        }
    }

    /// The NOTIFY in flight for `dialog` ended: the next one to send (then in flight), if any.
    pub fn done(&mut self, dialog: &K) -> Option<T> {
        let q = self.busy.get_mut(dialog)?;
        let next = q.pop_front();
        if next.is_none() {
            self.busy.remove(dialog);
        }
        next
    }

    /// Dialogs with a NOTIFY in flight.
    pub fn in_flight(&self) -> usize {
        self.busy.len()
    }

    /// NOTIFYs dropped from full queues, since creation.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_notify_waits_for_the_first_to_end_and_order_is_kept() {
        let mut q: NotifyQueue<&str, u32> = NotifyQueue::default();
        assert_eq!(q.offer(&"d", 1), Some(1), "nothing in flight: send");
        assert_eq!(q.offer(&"d", 2), None, "queued behind 1");
        assert_eq!(q.offer(&"d", 3), None);
        assert_eq!(q.offer(&"e", 10), Some(10), "another dialog is independent");
        assert_eq!(q.done(&"d"), Some(2));
        assert_eq!(q.done(&"d"), Some(3));
        assert_eq!(q.done(&"d"), None, "idle again");
        assert_eq!(q.offer(&"d", 4), Some(4));
        assert_eq!(q.in_flight(), 2);
        assert_eq!(q.done(&"unknown"), None);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_keeps_the_newest() {
        let mut q: NotifyQueue<u8, usize> = NotifyQueue::default();
        assert_eq!(q.offer(&0, 0), Some(0));
        for i in 1..=MAX_QUEUED + 2 {
            assert_eq!(q.offer(&0, i), None);
        }
        assert_eq!(q.dropped(), 2);
        let rest: Vec<usize> = std::iter::from_fn(|| q.done(&0)).collect();
        assert_eq!(rest.first(), Some(&3));
        assert_eq!(rest.last(), Some(&(MAX_QUEUED + 2)), "the newest is kept");
        assert_eq!(rest.len(), MAX_QUEUED);
        assert_eq!(q.in_flight(), 0);
    }
}
