//! Fairness between applications, as pure decisions the adapters share.
//!
//! Delivery tasks travel in lanes. Every application may put tasks in the **fast** lane at
//! a sustained `rate` with a `burst` on top (a GCRA over task counts); what it sends beyond
//! that goes to the **bulk** lane. Dispatchers take from the fast lanes first and give the
//! bulk lanes a guaranteed share, so an application that floods waits behind itself, not
//! in front of everyone else, and is slowed only while others have work. Nothing is
//! refused: the lane only decides the order.
//!
//! Tasks are also spread over `shards` (by a stable hash of the application id) so that
//! no single queue, and no single broker node, carries every task.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

const NANOS_PER_SECOND: f64 = 1_000_000_000.0;
/// Forgotten entries are swept when the map has grown by this many since the last sweep.
const SWEEP_EVERY: usize = 1024;

/// Which lane a task travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Within its application's share: delivered before bulk work.
    Fast,
    /// Beyond its application's share: delivered with the capacity the fast lane leaves,
    /// and never less than the bulk share.
    Bulk,
}

impl Lane {
    /// The lane's name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Fast => "fast",
            Lane::Bulk => "bulk",
        }
    }
}

/// The shard of `app_id` among `shards` (FNV-1a, 64 bit): the same in every process and
/// every release, because publishers and the queue layout must agree on it.
pub fn shard_of(app_id: &str, shards: u16) -> u16 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = app_id
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    let shards = u64::from(shards.max(1));
    // The modulus is below u16::MAX, so the remainder fits.
    u16::try_from(hash % shards).unwrap_or(0)
}

/// An application's fast-lane allowance: `rate` tasks per second, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// Sustained tasks per second an application may put in the fast lane.
    pub rate: f64,
    /// Tasks an idle application may put in the fast lane at once.
    pub burst: u32,
}

impl Share {
    fn interval_nanos(self) -> f64 {
        NANOS_PER_SECOND / self.rate.max(f64::MIN_POSITIVE)
    }
}

/// Decides the lane of each application's tasks, per process, in memory.
///
/// The state per application is one number, the theoretical arrival time of its next
/// fast-lane task; an application whose time has passed is indistinguishable from one never
/// seen, so such entries are dropped and memory follows the applications that sent within
/// the last `burst / rate` seconds, not all applications.
#[derive(Debug)]
pub struct LaneMeter {
    share: Share,
    next: HashMap<String, f64>,
    swept_at_len: usize,
}

impl LaneMeter {
    /// A meter granting every application `share`.
    pub fn new(share: Share) -> Self {
        Self {
            share,
            next: HashMap::new(),
            swept_at_len: 0,
        }
    }

    /// The lane of `tasks` tasks of `app_id` published at `now` (unix ns). All of them take
    /// one lane: a message's tasks travel together. Bulk tasks do not use up the share, so
    /// a flooding application keeps a trickle of `rate` in the fast lane.
    pub fn lane(&mut self, app_id: &str, tasks: u32, now: i64) -> Lane {
        // f64 carries unix nanoseconds to within a microsecond, far below any interval.
        let now = now as f64;
        let interval = self.share.interval_nanos();
        let tolerance = interval * f64::from(self.share.burst.max(1));
        let next = self.next.get(app_id).copied().unwrap_or(now).max(now);
        let after = next + interval * f64::from(tasks.max(1));
        let lane = if after - now <= tolerance {
            match self.next.get_mut(app_id) {
                Some(slot) => *slot = after,
                None => {
                    self.next.insert(app_id.to_owned(), after);
                }
            }
            Lane::Fast
        } else {
            Lane::Bulk
        };
        self.sweep(now);
        lane
    }

    /// Applications the meter currently remembers.
    pub fn remembered(&self) -> usize {
        self.next.len()
    }

    fn sweep(&mut self, now: f64) {
        if self.next.len() < self.swept_at_len + SWEEP_EVERY {
            return;
        }
        self.next.retain(|_, next| *next > now);
        self.swept_at_len = self.next.len();
    }
}

/// How a consumer of both lanes picks: the fast lane first, except that every
/// `bulk_every`-th pick prefers the bulk lane when it has work, so bulk work always gets at
/// least that share of a saturated dispatcher.
#[derive(Debug, Clone)]
pub struct LanePicker {
    bulk_every: u32,
    picks: u32,
}

impl LanePicker {
    /// A picker guaranteeing the bulk lane one pick in `bulk_every` (at least 2).
    pub fn new(bulk_every: u32) -> Self {
        Self {
            bulk_every: bulk_every.max(2),
            picks: 0,
        }
    }

    /// The lane to try first for the next pick.
    pub fn first(&mut self) -> Lane {
        self.picks = self.picks.wrapping_add(1);
        if self.picks.is_multiple_of(self.bulk_every) {
            Lane::Bulk
        } else {
            Lane::Fast
        }
    }
}

/// Items waiting per application, handed out in turns: each pick takes the oldest item of
/// the application whose turn it is, and that application goes to the back of the line.
/// A queue that holds everything (embedded mode) is fair this way at no cost but a map
/// lookup; memory follows the applications with items waiting.
#[derive(Debug)]
pub struct FairQueue<T> {
    apps: HashMap<Arc<str>, VecDeque<T>>,
    turns: VecDeque<Arc<str>>,
    len: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        Self {
            apps: HashMap::new(),
            turns: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> FairQueue<T> {
    /// Items waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Applications with items waiting.
    pub fn apps(&self) -> usize {
        self.turns.len()
    }

    /// Adds `item` last in `app`'s line; an application that had nothing waiting takes its
    /// turn after every application already waiting.
    pub fn push_back(&mut self, app: &str, item: T) {
        self.line(app, false).push_back(item);
        self.len += 1;
    }

    /// Puts `item` first in `app`'s line (an item handed out and given back); an application
    /// that had nothing waiting takes the next turn.
    pub fn push_front(&mut self, app: &str, item: T) {
        self.line(app, true).push_front(item);
        self.len += 1;
    }

    /// The oldest item of the application whose turn it is.
    pub fn pop_front(&mut self) -> Option<(Arc<str>, T)> {
        let app = self.turns.pop_front()?;
        let line = self.apps.get_mut(&app)?;
        let item = line.pop_front()?;
        self.len -= 1;
        if line.is_empty() {
            self.apps.remove(&app);
        } else {
            self.turns.push_back(Arc::clone(&app));
        }
        Some((app, item))
    }

    fn line(&mut self, app: &str, first: bool) -> &mut VecDeque<T> {
        let key = match self.apps.get_key_value(app) {
            Some((key, _)) => Arc::clone(key),
            None => {
                let key: Arc<str> = Arc::from(app);
                if first {
                    self.turns.push_front(Arc::clone(&key));
                } else {
                    self.turns.push_back(Arc::clone(&key));
                }
                key
            }
        };
        self.apps.entry(key).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn meter(rate: f64, burst: u32) -> LaneMeter {
        LaneMeter::new(Share { rate, burst })
    }

    #[test]
    fn a_quiet_application_stays_in_the_fast_lane() {
        let mut m = meter(100.0, 200);
        // 10 tasks a second for a minute.
        for i in 0..600 {
            assert_eq!(m.lane("app_quiet", 1, i * SECOND / 10), Lane::Fast);
        }
    }

    #[test]
    fn a_flood_gets_its_burst_then_a_trickle_of_its_rate() {
        let mut m = meter(100.0, 200);
        let now = 10 * SECOND;
        let fast = (0..10_000)
            .filter(|_| m.lane("app_flood", 1, now) == Lane::Fast)
            .count();
        assert_eq!(fast, 200, "the burst, all at one instant");
        // One second later the share has refilled by its rate, not more.
        let later = now + SECOND;
        let fast = (0..10_000)
            .filter(|_| m.lane("app_flood", 1, later) == Lane::Fast)
            .count();
        assert_eq!(fast, 100);
        // Another application is untouched by the flood.
        assert_eq!(m.lane("app_other", 1, later), Lane::Fast);
    }

    #[test]
    fn a_message_with_many_tasks_takes_one_lane() {
        let mut m = meter(100.0, 200);
        assert_eq!(m.lane("app", 150, 0), Lane::Fast);
        assert_eq!(m.lane("app", 100, 0), Lane::Bulk, "250 > the burst of 200");
        assert_eq!(
            m.lane("app", 50, 0),
            Lane::Fast,
            "bulk did not use the share"
        );
    }

    #[test]
    fn idle_applications_are_forgotten() {
        let mut m = meter(100.0, 10);
        for i in 0..5_000 {
            m.lane(&format!("app_{i}"), 1, 0);
        }
        // A second later every entry is in the past; the next sweep drops them all.
        for i in 0..(SWEEP_EVERY as i64 + 10) {
            m.lane(&format!("late_{i}"), 1, SECOND * 100 + i);
        }
        assert!(m.remembered() < 2 * SWEEP_EVERY, "{}", m.remembered());
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("app_2Xyz", 1), 0);
        assert_eq!(shard_of("app_2Xyz", 8), shard_of("app_2Xyz", 8));
        let mut counts = [0_u32; 4];
        for i in 0..4_000 {
            counts[usize::from(shard_of(&format!("app_{i}"), 4))] += 1;
        }
        assert!(
            counts.iter().all(|c| (800..1_200).contains(c)),
            "{counts:?}"
        );
        // Pinned so that a change to the hash, which would move every application's tasks
        // to another queue during an upgrade, is a deliberate one.
        assert_eq!(shard_of("app_fixed", 16), 13);
        assert_eq!(shard_of("app_2Xyz", 8), 4);
    }

    #[test]
    fn applications_take_turns() {
        let mut q = FairQueue::default();
        for n in 0..1_000 {
            q.push_back("app_flood", n);
        }
        q.push_back("app_quiet", 1_000);
        q.push_back("app_other", 2_000);
        let first: Vec<_> = (0..3)
            .filter_map(|_| q.pop_front())
            .map(|(_, n)| n)
            .collect();
        assert_eq!(
            first,
            [0, 1_000, 2_000],
            "one of each before the flood's second"
        );
        assert_eq!(q.apps(), 1);
        assert_eq!(q.len(), 999);
        // Given back, an item is next in its line and its application's turn comes first.
        q.push_front("app_quiet", 1_001);
        assert_eq!(
            q.pop_front().map(|(a, n)| (a.to_string(), n)),
            Some(("app_quiet".into(), 1_001))
        );
        assert_eq!(q.pop_front().map(|(_, n)| n), Some(1));
        let rest = std::iter::from_fn(|| q.pop_front()).count();
        assert_eq!(rest, 998);
        assert!(q.is_empty() && q.apps() == 0);
    }

    #[test]
    fn the_picker_gives_bulk_its_share() {
        let mut p = LanePicker::new(4);
        let picks: Vec<_> = (0..8).map(|_| p.first()).collect();
        let bulk = picks.iter().filter(|l| **l == Lane::Bulk).count();
        assert_eq!(bulk, 2);
    }
}
