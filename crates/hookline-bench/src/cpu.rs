//! Where the CPU went during a scenario: each process's user + system time from
//! `/proc/<pid>/stat`, as cores used over the scenario's wall time. On one shared machine this
//! is what bounds the figures, so every run records it instead of leaving it to a profiler.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The processes watched, by name.
#[derive(Debug, Clone)]
pub struct Watched(Vec<(String, u32)>);

impl Watched {
    /// The bench itself, the given roles, and each service (by name) whose server listens on
    /// this machine at the given port. Found by its listening socket, not its name: a machine
    /// that also runs test clusters has several `beam.smp` and `redis-server` processes, and a
    /// service on another host has none here.
    pub fn new(roles: &[(&'static str, Option<u32>)], services: &[(&'static str, u16)]) -> Self {
        let mut processes = vec![("bench".to_owned(), std::process::id())];
        processes.extend(
            roles
                .iter()
                .filter_map(|(name, pid)| Some(((*name).to_owned(), (*pid)?))),
        );
        for (name, port) in services {
            if let Some(pid) = listener_pid(*port) {
                processes.push(((*name).to_owned(), pid));
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

/// The process with a TCP socket listening on `port`: the socket's inode from
/// `/proc/net/tcp` and `tcp6`, then the process holding it among `/proc/<pid>/fd`.
fn listener_pid(port: u16) -> Option<u32> {
    let sockets: HashSet<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    if sockets.is_empty() {
        return None;
    }
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let holds = std::fs::read_dir(entry.path().join("fd"))
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| target.to_str().is_some_and(|t| sockets.contains(t)));
        holds.then_some(pid)
    })
}

/// Inodes of the sockets in a `/proc/net/tcp` table listening (state `0A`) on `port`.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (_, local_port) = fields.get(1)?.rsplit_once(':')?;
            let listening = *fields.get(3)? == "0A";
            let matches = u16::from_str_radix(local_port, 16).ok()? == port;
            let inode = fields.get(9)?;
            (listening && matches).then(|| (*inode).to_owned())
        })
        .collect()
}

/// The port of a service URL such as `amqp://guest:guest@127.0.0.1:5672/%2f`, or `default`.
pub fn port_of(service_url: &str, default: u16) -> u16 {
    url::Url::parse(service_url)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(listener_pid(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(listener_pid(port), None, "nothing listens there any more");
    }

    #[test]
    fn reads_ports_from_service_urls() {
        assert_eq!(port_of("amqp://guest:guest@127.0.0.1:5701/%2f", 5672), 5701);
        assert_eq!(port_of("amqp://localhost", 5672), 5672);
        assert_eq!(port_of("redis://127.0.0.1:6380", 6379), 6380);
        assert_eq!(port_of("not a url", 6379), 6379);
    }
}
