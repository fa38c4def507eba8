//! Requests in flight per endpoint in this process. An attempt waits a moment for one of its
//! endpoint's slots; if none frees up, the task goes back to the retry schedule instead of
//! holding a worker. A slot is held only for the HTTP exchange, so a fast endpoint turns its
//! slots over in milliseconds and never waits long, while a slow one can hold at most its cap
//! of workers, never all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Default)]
pub struct InFlight {
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// One request's place among its endpoint's, given back when dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    owner: &'a InFlight,
    endpoint_id: String,
    permit: Option<OwnedSemaphorePermit>,
}

impl InFlight {
    /// A slot for `endpoint_id` within `cap`, waiting at most `wait` for one.
    pub async fn acquire(&self, endpoint_id: &str, cap: usize, wait: Duration) -> Option<Slot<'_>> {
        let semaphore = {
            let mut endpoints = self
                .endpoints
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                endpoints
                    .entry(endpoint_id.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(cap))),
            )
        };
        let permit = tokio::time::timeout(wait, semaphore.acquire_owned())
            .await
            .ok()?
            .ok()?;
        Some(Slot {
            owner: self,
            endpoint_id: endpoint_id.to_owned(),
            permit: Some(permit),
        })
    }
}

impl Drop for Slot<'_> {
    /// Gives the permit back, and forgets the endpoint once nothing holds or waits for it,
    /// so the map stays as small as the set of endpoints being called.
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut endpoints = self
            .owner
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if endpoints
            .get(&self.endpoint_id)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            endpoints.remove(&self.endpoint_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_WAIT: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn an_endpoint_gets_at_most_its_cap_and_slots_come_back() {
        let in_flight = InFlight::default();
        let first = in_flight.acquire("ep_slow", 2, NO_WAIT).await;
        let second = in_flight.acquire("ep_slow", 2, NO_WAIT).await;
        assert!(first.is_some() && second.is_some());
        assert!(
            in_flight.acquire("ep_slow", 2, NO_WAIT).await.is_none(),
            "third is over the cap"
        );
        assert!(
            in_flight.acquire("ep_fast", 2, NO_WAIT).await.is_some(),
            "others are not held up"
        );
        drop(first);
        assert!(in_flight.acquire("ep_slow", 2, NO_WAIT).await.is_some());
        drop(second);
        assert!(
            in_flight
                .endpoints
                .lock()
                .map(|e| e.is_empty())
                .unwrap_or(false),
            "forgotten when idle"
        );
    }

    #[tokio::test]
    async fn a_slot_freed_while_waiting_is_taken() {
        let in_flight = Arc::new(InFlight::default());
        let held = in_flight.acquire("ep", 1, NO_WAIT).await;
        let waiter = {
            let in_flight = Arc::clone(&in_flight);
            tokio::spawn(async move {
                in_flight
                    .acquire("ep", 1, Duration::from_secs(5))
                    .await
                    .is_some()
            })
        };
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiter.await.unwrap_or(false));
    }
}
