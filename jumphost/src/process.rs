//! Process identity on this machine: a pid names a process only until it is
//! reused, so remedy records the pid together with the kernel's start time
//! (field 22 of `/proc/<pid>/stat`, clock ticks since boot) and checks both.

/// The start time of process `pid`, zombie or not. Together with the pid it
/// names one process even after the pid is reused. `None` if there is no
/// such process.
pub fn process_start(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|s| s.start)
}

/// The start time of `pid` while it runs: `None` when it is gone or a zombie.
pub fn running_start(pid: u32) -> Option<u64> {
    proc_stat(pid).filter(|s| s.state != 'Z').map(|s| s.start)
}

/// Whether process `pid` runs, and, when `start` is given, is the same process
/// that was recorded (not a later one that got the pid). Zombies count as gone.
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    let Ok(signed) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if signed <= 0 {
        // kill(0, …) would address our own process group.
        return false;
    }
    if std::path::Path::new("/proc/self/stat").exists() {
        return match proc_stat(pid) {
            Some(stat) => stat.state != 'Z' && start.is_none_or(|s| s == stat.start),
            None => false,
        };
    }
    // No procfs: the start time cannot be checked; existence is the best we have.
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(signed, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

struct ProcStat {
    state: char,
    start: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Fields 3 (state) and 22 (start time) of a `/proc/<pid>/stat` line.
fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name (field 2) is in parentheses and may contain spaces or
    // ')', so fields are counted from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `fields` now starts at field 4; field 22 is 18 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_wrong_start_is_not() {
        let pid = std::process::id();
        let start = process_start(pid).expect("own /proc stat");
        assert_eq!(running_start(pid), Some(start));
        assert!(process_alive(pid, Some(start)));
        assert!(process_alive(pid, None));
        assert!(!process_alive(pid, Some(start + 1)));
        assert!(!process_alive(0, None));
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_skipped() {
        let line =
            "4242 (a) b (c) Z 1 4242 4242 0 -1 4194560 93 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3";
        let stat = parse_stat(line).expect("parsed");
        assert_eq!((stat.state, stat.start), ('Z', 987654));
        assert!(parse_stat("4242 (truncated").is_none());
    }

    #[test]
    fn a_zombie_has_a_start_time_but_is_not_running() {
        // A child that exits and is not reaped yet is a zombie.
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let zombie = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            proc_stat(pid).is_some_and(|s| s.state == 'Z')
        });
        assert!(zombie, "the child never showed as a zombie");
        assert!(process_start(pid).is_some());
        assert_eq!(running_start(pid), None);
        assert!(!process_alive(pid, None));
        child.wait().expect("reap the child");
    }
}
