//! Attempts in flight per endpoint in this process. Past the endpoint's cap, a task goes back
//! to the retry schedule for a moment instead of taking a worker: one slow endpoint can hold
//! at most its cap of workers, never all of them, so the others' deliveries keep flowing.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct InFlight {
    counts: Mutex<HashMap<String, usize>>,
}

/// One attempt's place in its endpoint's count, given back when dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    owner: &'a InFlight,
    endpoint_id: String,
}

impl InFlight {
    /// A slot for `endpoint_id` if fewer than `cap` of its attempts are in flight.
    pub fn try_acquire(&self, endpoint_id: &str, cap: usize) -> Option<Slot<'_>> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(endpoint_id.to_owned()).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            owner: self,
            endpoint_id: endpoint_id.to_owned(),
        })
    }

    /// Attempts in flight to `endpoint_id` now.
    #[cfg(test)]
    pub fn count(&self, endpoint_id: &str) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(endpoint_id).copied().unwrap_or(0)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut counts = self
            .owner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.endpoint_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.endpoint_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_gets_at_most_its_cap_and_slots_come_back() {
        let in_flight = InFlight::default();
        let first = in_flight.try_acquire("ep_slow", 2);
        let second = in_flight.try_acquire("ep_slow", 2);
        assert!(first.is_some() && second.is_some());
        assert!(
            in_flight.try_acquire("ep_slow", 2).is_none(),
            "third is over the cap"
        );
        assert!(
            in_flight.try_acquire("ep_fast", 2).is_some(),
            "other endpoints are not held up"
        );
        drop(first);
        assert_eq!(in_flight.count("ep_slow"), 1);
        assert!(in_flight.try_acquire("ep_slow", 2).is_some());
        drop(second);
    }
}
