//! Fair admission to the accept path.
//!
//! At most `limit` message requests are in service at once (storing, publishing, waiting
//! for confirms). Past that, requests wait in line per application and a freed place goes
//! to the application whose turn it is ([`FairQueue`]), not to whoever asked first. An
//! application sending hundreds of concurrent requests therefore holds at most the places it
//! had when another application arrived, plus one in every turn: its requests wait, the
//! other's do not wait behind them. Nothing is refused; a waiting request costs its task and
//! its already-read body.
//!
//! Why a limit at all: group commit makes every request in service share the same writes,
//! so a request's time in service grows with the number in service (Little's law). Keeping
//! that number near what fills the writes keeps a newcomer's wait near one write, however
//! many requests a flood keeps open.

use std::sync::{Mutex, PoisonError};

use hookline_core::fair::FairQueue;
use tokio::sync::oneshot;

/// The gate; shared by every request of one process.
#[derive(Debug)]
pub struct Admission {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_service: usize,
    waiting: FairQueue<oneshot::Sender<()>>,
}

/// A place in service; dropping it hands the place on.
#[must_use = "the place is given up when this is dropped"]
#[derive(Debug)]
pub struct Admitted<'a> {
    gate: &'a Admission,
}

impl Admission {
    /// A gate letting `limit` requests (at least one) in service at once.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Waits for a place for a request of `app`.
    pub async fn enter(&self, app: &str) -> Admitted<'_> {
        let waiting = {
            let mut state = self.lock();
            if state.in_service < self.limit {
                state.in_service += 1;
                return Admitted { gate: self };
            }
            let (place, waiting) = oneshot::channel();
            state.waiting.push_back(app, place);
            Waiting {
                gate: self,
                place: waiting,
            }
        };
        let mut waiting = waiting;
        // The sender is only dropped unsent on shutdown; the request goes ahead rather than
        // hangs.
        let _ = (&mut waiting.place).await;
        Admitted { gate: self }
    }

    /// Requests waiting for a place now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Gives a place up: to the next waiter in turn, else back to the pool.
    fn leave(&self) {
        let mut state = self.lock();
        while let Some((_, next)) = state.waiting.pop_front() {
            // A waiter whose request was dropped no longer takes places.
            if next.send(()).is_ok() {
                return;
            }
        }
        state.in_service = state.in_service.saturating_sub(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request waiting for a place. Dropped after a place was handed to it but before it
/// took it (its request was cancelled just then), it hands the place on.
struct Waiting<'a> {
    gate: &'a Admission,
    place: oneshot::Receiver<()>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // Ok only if a place arrived and was never taken: once awaited, it is gone.
        if self.place.try_recv().is_ok() {
            self.gate.leave();
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.gate.leave();
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_newcomer_gets_the_next_place_however_many_a_flood_keeps_waiting() {
        let gate = Arc::new(Admission::new(2));
        let first = gate.enter("app_flood").await;
        let second = gate.enter("app_flood").await;
        let (order, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
        let mut waiters = Vec::new();
        for n in 0..100 {
            let (gate, order) = (Arc::clone(&gate), order.clone());
            waiters.push(tokio::spawn(async move {
                let _place = gate.enter("app_flood").await;
                let _ = order.send(format!("flood {n}"));
            }));
        }
        while gate.waiting() < 100 {
            tokio::task::yield_now().await;
        }
        let quiet = {
            let (gate, order) = (Arc::clone(&gate), order.clone());
            tokio::spawn(async move {
                let _place = gate.enter("app_quiet").await;
                let _ = order.send("quiet".to_owned());
            })
        };
        while gate.waiting() < 101 {
            tokio::task::yield_now().await;
        }
        drop(first);
        drop(second);
        let mut seen = Vec::new();
        while seen.len() < 101 {
            let next = tokio::time::timeout(Duration::from_secs(5), arrivals.recv())
                .await
                .expect("progress")
                .expect("open");
            seen.push(next);
        }
        let at = seen
            .iter()
            .position(|s| s == "quiet")
            .expect("quiet served");
        assert!(at <= 1, "quiet came {} of 101", at + 1);
        quiet.await.expect("quiet task");
        for waiter in waiters {
            waiter.await.expect("flood task");
        }
        assert_eq!(gate.lock().in_service, 0);
    }

    #[tokio::test]
    async fn a_place_handed_to_a_request_cancelled_before_it_took_it_is_handed_on() {
        let gate = Admission::new(1);
        let held = gate.enter("a").await;
        let mut cancelled = Box::pin(gate.enter("b"));
        // Polled once: it is now in line.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(cancelled.as_mut().poll(&mut cx).is_pending());
        drop(held); // hands the place to "b", which never runs again
        drop(cancelled);
        let next = tokio::time::timeout(Duration::from_secs(1), gate.enter("c")).await;
        assert!(next.is_ok(), "the place was handed on");
        assert_eq!(gate.lock().in_service, 1);
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_does_not_keep_a_place() {
        let gate = Arc::new(Admission::new(1));
        let held = gate.enter("a").await;
        let abandoned = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                let _place = gate.enter("b").await;
            })
        };
        while gate.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        let _ = abandoned.await;
        drop(held);
        let next = tokio::time::timeout(Duration::from_secs(1), gate.enter("c")).await;
        assert!(next.is_ok(), "the place went back to the pool");
    }
}
