//! Where the CPU went during a scenario: each process's user + system time from
//! `/proc/<pid>/stat`, as cores used over the scenario's wall time. On one shared machine this
//! is what bounds the figures, so every run records it instead of leaving it to a profiler.

use std::collections::BTreeMap;
use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The processes watched, by name.
#[derive(Debug, Clone)]
pub struct Watched(Vec<(String, u32)>);

impl Watched {
    /// The bench itself, the given roles, and the local RabbitMQ and Redis when found.
    pub fn new(roles: &[(&'static str, Option<u32>)]) -> Self {
        let mut processes = vec![("bench".to_owned(), std::process::id())];
        processes.extend(
            roles
                .iter()
                .filter_map(|(name, pid)| Some(((*name).to_owned(), (*pid)?))),
        );
        for (name, comm) in [("rabbitmq", "beam.smp"), ("redis", "redis-server")] {
            if let Some(pid) = find_by_comm(comm) {
                processes.push((name.to_owned(), pid));
            }
        }
        Self(processes)
    }

    pub fn start(&self) -> Sample {
        Sample {
            at: Instant::now(),
            ticks: self
                .0
                .iter()
                .map(|(n, pid)| (n.clone(), ticks(*pid)))
                .collect(),
        }
    }
}

/// CPU times at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    ticks: Vec<(String, Option<u64>)>,
}

impl Sample {
    /// Cores each process used on average since this sample.
    pub fn cores_since(&self, watched: &Watched) -> BTreeMap<String, f64> {
        let wall = self.at.elapsed().as_secs_f64().max(0.001);
        let now = watched.start();
        self.ticks
            .iter()
            .zip(now.ticks)
            .filter_map(|((name, before), (_, after))| {
                let used = after?.checked_sub((*before)?)?;
                Some((name.clone(), used as f64 / TICKS_PER_SECOND / wall))
            })
            .collect()
    }
}

/// utime + stime of `pid`, in clock ticks.
fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn find_by_comm(comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (name.trim() == comm).then_some(pid)
    })
}
