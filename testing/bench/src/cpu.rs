//! CPU time used by the processes of a run (`/proc/PID/stat`), to show where the time goes.

use std::collections::BTreeMap;

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU seconds a process used so far; `None` when it is gone.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// CPU seconds of named processes at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot(BTreeMap<&'static str, f64>);

impl Snapshot {
    /// Reads the CPU time of each `(name, pid)`.
    pub fn take(processes: &[(&'static str, u32)]) -> Snapshot {
        Snapshot(
            processes
                .iter()
                .filter_map(|(name, pid)| cpu_secs(*pid).map(|s| (*name, s)))
                .collect(),
        )
    }

    /// "name 1.23s, ..." of the CPU used since `earlier`.
    pub fn since(&self, earlier: &Snapshot) -> String {
        self.0
            .iter()
            .map(|(name, now)| {
                let before = earlier.0.get(name).copied().unwrap_or_default();
                format!("{name} {:.2}s", now - before)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
