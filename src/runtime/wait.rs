//! `sysfile run --wait`: wait until systemd in a started container has finished booting, and
//! when it did not reach `running`, say which units failed and what they logged.
//!
//! Right after `docker run` the container's systemd has not created `/run/systemd/system` nor its
//! private bus socket yet, so `systemctl is-system-running --wait` prints `offline` or fails with
//! `Failed to connect to bus`. [`wait_for_boot`] retries it every [`RETRY_INTERVAL`] until it prints
//! a final state or the timeout passes; [`Outcome`] says which. [`report`] gathers the failed units
//! (`systemctl --failed --no-legend --plain`) and their last journal lines
//! (`journalctl --unit=UNIT -n 10 --no-pager`) for stderr. Everything read from the container goes
//! through [`terminal_text`] before it is printed.
//!
//! The engine is behind the [`Probe`] trait (`engine::EngineContainer` calls `docker`/`podman
//! exec`), so the loop and the formatting are tested with a fake.

use std::time::{Duration, Instant};

use super::labels::terminal_text;

/// `--wait` without a value.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// The longest `--wait=TIMEOUT` accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often `systemctl is-system-running --wait` is retried while the bus is not up.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(50);
/// The exit code of `sysfile run --wait` when systemd did not reach `running` in time (1 is a host
/// that cannot boot the image, 2 an engine or image problem).
pub const EXIT_NOT_RUNNING: i32 = 3;
/// At most this many failed units are reported, each with its journal.
pub const MAX_REPORTED_UNITS: usize = 10;
/// Journal lines shown per failed unit.
pub const JOURNAL_LINES: usize = 10;
/// A line from the container longer than this is cut (with `…`).
pub const MAX_LINE_CHARS: usize = 400;
/// How long each diagnostic command (`systemctl --failed`, `journalctl`) may take.
const DIAGNOSTIC_LIMIT: Duration = Duration::from_secs(10);

/// Parses a `--wait` timeout: whole seconds (`90`, `90s`) or minutes (`2m`), from 1 s to 1 h.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.strip_suffix('s') {
        Some(d) => (d, 1),
        None => match text.strip_suffix('m') {
            Some(d) => (d, 60),
            None => (text, 1),
        },
    };
    let bad = || {
        format!(
            "`{}` is not a timeout: give whole seconds or minutes, e.g. 90, 90s or 2m (at most {} s)",
            terminal_text(text),
            MAX_TIMEOUT.as_secs()
        )
    };
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs = digits.parse::<u64>().map_err(|_| bad())? * unit;
    if secs == 0 || secs > MAX_TIMEOUT.as_secs() {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

/// What one `systemctl is-system-running --wait` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// `running`: booted, nothing failed.
    Running,
    /// Booted (or given up) in another final state: `degraded`, `maintenance`, `stopping`.
    Final(String),
    /// Not booted yet: `offline` (no `/run/systemd/system` yet), `initializing`, `starting`,
    /// `unknown`, or nothing at all (the bus is not up, or the call was cut short).
    NotYet,
}

/// Classifies what `systemctl is-system-running --wait` printed on stdout.
pub fn classify(stdout: &str) -> State {
    match stdout.trim() {
        "running" => State::Running,
        s @ ("degraded" | "maintenance" | "stopping") => State::Final(s.to_string()),
        _ => State::NotYet,
    }
}

/// What a command run in the container gave back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code; `None` when it was killed (signal, or cut at its time limit).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The container, as far as waiting needs it.
pub trait Probe {
    /// The container's name or short ID, for messages.
    fn name(&self) -> String;
    /// Runs `args` in the container, cut off after `limit`.
    fn exec(&self, args: &[&str], limit: Duration) -> ExecOutput;
    /// Whether the container is still running (`None`: could not tell).
    fn is_running(&self) -> Option<bool>;
    /// The last `lines` lines of the container's console log.
    fn logs_tail(&self, lines: usize) -> String;
}

/// How the wait ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// systemd reports `running`.
    Running { after: Duration },
    /// systemd finished booting in another state (`degraded`, …).
    NotRunning { state: String, after: Duration },
    /// The container stopped before systemd came up.
    Exited { after: Duration },
    /// No final state within the timeout; `last` is the last thing `is-system-running` said.
    TimedOut { timeout: Duration, last: String },
}

impl Outcome {
    /// The exit code of `sysfile run --wait`: 0 for `running`, else [`EXIT_NOT_RUNNING`].
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Running { .. } => 0,
            _ => EXIT_NOT_RUNNING,
        }
    }
}

/// Retries `systemctl is-system-running --wait` in the container every [`RETRY_INTERVAL`] until it
/// prints a final state, the container stops, or `timeout` passes.
pub fn wait_for_boot(probe: &dyn Probe, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::TimedOut { timeout, last };
        }
        let out = probe.exec(&["systemctl", "is-system-running", "--wait"], left);
        match classify(&out.stdout) {
            State::Running => {
                return Outcome::Running {
                    after: started.elapsed(),
                };
            }
            State::Final(state) => {
                return Outcome::NotRunning {
                    state,
                    after: started.elapsed(),
                };
            }
            State::NotYet => {
                last = first_line(if out.stdout.trim().is_empty() {
                    &out.stderr
                } else {
                    &out.stdout
                });
                if probe.is_running() == Some(false) {
                    return Outcome::Exited {
                        after: started.elapsed(),
                    };
                }
            }
        }
        std::thread::sleep(RETRY_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

fn first_line(text: &str) -> String {
    cut(text.trim().lines().next().unwrap_or(""))
}

/// A line from the container, made terminal-safe and cut at [`MAX_LINE_CHARS`].
fn cut(line: &str) -> String {
    let safe = terminal_text(line.trim_end());
    if safe.chars().count() > MAX_LINE_CHARS {
        let mut short: String = safe.chars().take(MAX_LINE_CHARS).collect();
        short.push('…');
        short
    } else {
        safe
    }
}

/// Whether `name` looks like a systemd unit name: `A-Z a-z 0-9 : _ . \ @ -`, not starting with
/// `-`, with a suffix, at most 256 bytes. Only such names are passed on to `journalctl`.
pub fn is_unit_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('-')
        && name.contains('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.\\@-".contains(c))
}

/// The unit names in `systemctl --failed --no-legend --plain` output (the first word of each
/// line), keeping only names [`is_unit_name`] accepts, at most [`MAX_REPORTED_UNITS`].
pub fn failed_units(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(|word| word.trim_start_matches('●').trim())
        .filter(|name| is_unit_name(name))
        .take(MAX_REPORTED_UNITS)
        .map(str::to_string)
        .collect()
}

/// What [`report`] gathered from the container, to be formatted by [`format_report`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Failed units with their last journal lines.
    pub failed: Vec<(String, String)>,
    /// `systemctl list-jobs` output (on a timeout: what is still starting).
    pub jobs: String,
    /// The end of the console log (when the container stopped).
    pub logs: String,
    /// Why the failed units could not be listed (e.g. no bus yet), when they could not.
    pub unlisted: Option<String>,
}

/// Collects the findings for an outcome other than `running`.
pub fn gather(probe: &dyn Probe, outcome: &Outcome) -> Findings {
    let mut findings = Findings::default();
    if let Outcome::Exited { .. } = outcome {
        findings.logs = probe.logs_tail(20);
        return findings;
    }
    let failed = probe.exec(
        &[
            "systemctl",
            "--failed",
            "--no-legend",
            "--plain",
            "--no-pager",
        ],
        DIAGNOSTIC_LIMIT,
    );
    if failed.code != Some(0) {
        findings.unlisted = Some(match first_line(&failed.stderr) {
            line if line.is_empty() => "no answer".to_string(),
            line => line,
        });
    }
    for unit in failed_units(&failed.stdout) {
        let journal = probe.exec(
            &[
                "journalctl",
                &format!("--unit={unit}"),
                "-n",
                &JOURNAL_LINES.to_string(),
                "--no-pager",
                "--quiet",
            ],
            DIAGNOSTIC_LIMIT,
        );
        findings.failed.push((unit, journal.stdout));
    }
    if let Outcome::TimedOut { .. } = outcome {
        findings.jobs = probe
            .exec(
                &["systemctl", "list-jobs", "--no-legend", "--no-pager"],
                DIAGNOSTIC_LIMIT,
            )
            .stdout;
    }
    findings
}

/// The text for stderr: one line for the outcome, then the failed units, each with its journal
/// lines indented, the pending jobs and the console log tail. Terminal-safe whatever the
/// container printed.
pub fn format_report(container: &str, outcome: &Outcome, findings: &Findings) -> String {
    let who = terminal_text(container);
    let mut out = match outcome {
        Outcome::Running { after } => {
            format!("{who}: systemd is running ({:.1} s)\n", after.as_secs_f64())
        }
        Outcome::NotRunning { state, after } => format!(
            "error: {who}: systemd finished booting as `{}`, not `running` ({:.1} s)\n",
            terminal_text(state),
            after.as_secs_f64()
        ),
        Outcome::Exited { after } => format!(
            "error: {who}: the container stopped while systemd was booting ({:.1} s)\n",
            after.as_secs_f64()
        ),
        Outcome::TimedOut { timeout, last } => format!(
            "error: {who}: systemd did not finish booting within {} s (last: {})\n",
            timeout.as_secs(),
            if last.is_empty() {
                "no answer".to_string()
            } else {
                format!("`{last}`")
            }
        ),
    };
    if !findings.failed.is_empty() {
        out.push_str("failed units:\n");
        for (unit, _) in &findings.failed {
            out.push_str(&format!("  {unit}\n"));
        }
        for (unit, journal) in &findings.failed {
            out.push_str(&format!("last {JOURNAL_LINES} journal lines of {unit}:\n"));
            let lines: Vec<&str> = journal.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.is_empty() {
                out.push_str("  (none)\n");
            }
            for line in lines.iter().rev().take(JOURNAL_LINES).rev() {
                out.push_str(&format!("  {}\n", cut(line)));
            }
        }
    } else if let Some(why) = &findings.unlisted {
        out.push_str(&format!("the failed units could not be listed: {why}\n"));
    } else if !matches!(outcome, Outcome::Running { .. } | Outcome::Exited { .. }) {
        out.push_str("no failed units\n");
    }
    let jobs: Vec<&str> = findings
        .jobs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if !jobs.is_empty() {
        out.push_str("jobs still queued (systemctl list-jobs):\n");
        for line in jobs.iter().take(MAX_REPORTED_UNITS) {
            out.push_str(&format!("  {}\n", cut(line)));
        }
    }
    if !findings.logs.trim().is_empty() {
        out.push_str("last lines of the console log:\n");
        for line in findings.logs.lines() {
            out.push_str(&format!("  {}\n", cut(line)));
        }
    }
    out
}

/// Waits for `probe` and returns the exit code and the report for stderr.
pub fn wait_and_report(probe: &dyn Probe, timeout: Duration) -> (i32, String) {
    let outcome = wait_for_boot(probe, timeout);
    let findings = match outcome {
        Outcome::Running { .. } => Findings::default(),
        _ => gather(probe, &outcome),
    };
    (
        outcome.exit_code(),
        format_report(&probe.name(), &outcome, &findings),
    )
}

/// A command that waits for an already started container without `sysfile`: it retries while
/// systemd is not up and prints the final state, with its exit code (0 for `running`).
pub fn shell_hint(exe: &str, container: &str) -> String {
    format!(
        "{exe} exec {} timeout {} sh -c 'until systemctl is-system-running --wait 2>/dev/null | grep -qvx offline; do sleep 0.3; done; systemctl is-system-running'",
        super::shell::quote(container),
        DEFAULT_TIMEOUT.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout(" 5 "), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("60m"), Ok(MAX_TIMEOUT));
        for bad in [
            "",
            "0",
            "0s",
            "61m",
            "3601",
            "-5",
            "1.5",
            "1h",
            "s",
            "m",
            "9999999",
            "1 m",
            "+3",
            "5ms",
            "\u{1b}[31m",
        ] {
            let err = parse_timeout(bad).expect_err(bad);
            assert!(err.contains("is not a timeout"), "{bad:?}: {err}");
            assert!(!err.contains('\u{1b}'), "{err:?}");
        }
    }

    #[test]
    fn states() {
        assert_eq!(classify("running\n"), State::Running);
        assert_eq!(classify("degraded\n"), State::Final("degraded".into()));
        assert_eq!(classify("maintenance"), State::Final("maintenance".into()));
        assert_eq!(classify("stopping"), State::Final("stopping".into()));
        // Right after `docker run`: no /run/systemd/system yet, or no bus.
        for not_yet in [
            "offline\n",
            "",
            "\n",
            "starting",
            "initializing",
            "unknown",
            "runningx",
        ] {
            assert_eq!(classify(not_yet), State::NotYet, "{not_yet:?}");
        }
    }

    #[test]
    fn unit_names() {
        for good in [
            "broken.service",
            "getty@tty1.service",
            "sys-fs-fuse-connections.mount",
            "dev-disk-by\\x2duuid-1.device",
        ] {
            assert!(is_unit_name(good), "{good}");
        }
        for bad in [
            "",
            "--all",
            "-x.service",
            "nodot",
            "a b.service",
            "a;b.service",
            "a\u{1b}.service",
            &"a".repeat(300),
        ] {
            assert!(!is_unit_name(bad), "{bad:?}");
        }
        let out = "broken.service loaded failed failed Broken\n\
                   ● other.service loaded failed failed Other\n\
                   --output=json.service loaded failed failed Hostile\n\n";
        assert_eq!(failed_units(out), ["broken.service"]);
        let many: String = (0..20)
            .map(|i| format!("u{i}.service loaded failed failed U\n"))
            .collect();
        assert_eq!(failed_units(&many).len(), MAX_REPORTED_UNITS);
    }

    /// A container whose `is-system-running` answers come from a script.
    struct Fake {
        answers: RefCell<Vec<ExecOutput>>,
        running: bool,
        calls: RefCell<Vec<String>>,
    }

    impl Fake {
        fn new(answers: &[(&str, &str)], running: bool) -> Fake {
            Fake {
                answers: RefCell::new(
                    answers
                        .iter()
                        .rev()
                        .map(|(out, err)| ExecOutput {
                            code: Some(if *out == "running" { 0 } else { 1 }),
                            stdout: format!("{out}\n"),
                            stderr: err.to_string(),
                        })
                        .collect(),
                ),
                running,
                calls: RefCell::new(Vec::new()),
            }
        }
    }

    impl Probe for Fake {
        fn name(&self) -> String {
            "box".into()
        }
        fn exec(&self, args: &[&str], _limit: Duration) -> ExecOutput {
            self.calls.borrow_mut().push(args.join(" "));
            match args {
                ["systemctl", "is-system-running", "--wait"] => {
                    self.answers.borrow_mut().pop().unwrap_or(ExecOutput {
                        code: Some(1),
                        stdout: "starting\n".into(),
                        stderr: String::new(),
                    })
                }
                ["systemctl", "--failed", ..] => ExecOutput {
                    code: Some(0),
                    stdout: "broken.service loaded failed failed Broken\n".into(),
                    stderr: String::new(),
                },
                ["journalctl", unit, ..] => ExecOutput {
                    code: Some(0),
                    stdout: format!(
                        "Nov 30 host systemd[1]: {}: failed \u{1b}[2J\n",
                        unit.trim_start_matches("--unit=")
                    ),
                    stderr: String::new(),
                },
                ["systemctl", "list-jobs", ..] => ExecOutput {
                    code: Some(0),
                    stdout: "7 slow.service start running\n".into(),
                    stderr: String::new(),
                },
                _ => ExecOutput::default(),
            }
        }
        fn is_running(&self) -> Option<bool> {
            Some(self.running)
        }
        fn logs_tail(&self, _lines: usize) -> String {
            "Failed to mount cgroup\n".into()
        }
    }

    #[test]
    fn retries_while_the_bus_is_not_up() {
        let fake = Fake::new(
            &[
                ("", "Failed to connect to bus: No such file or directory"),
                ("offline", ""),
                ("running", ""),
            ],
            true,
        );
        let (code, text) = wait_and_report(&fake, Duration::from_secs(30));
        assert_eq!(code, 0, "{text}");
        assert!(text.starts_with("box: systemd is running ("), "{text}");
        assert_eq!(fake.calls.borrow().len(), 3);
    }

    #[test]
    fn degraded_reports_failed_units_and_their_journal() {
        let fake = Fake::new(&[("offline", ""), ("degraded", "")], true);
        let outcome = wait_for_boot(&fake, Duration::from_secs(30));
        let Outcome::NotRunning { state, .. } = &outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(state, "degraded");
        assert_eq!(outcome.exit_code(), EXIT_NOT_RUNNING);
        let findings = gather(&fake, &outcome);
        assert!(
            fake.calls
                .borrow()
                .contains(&"journalctl --unit=broken.service -n 10 --no-pager --quiet".to_string())
        );
        let fixed = Outcome::NotRunning {
            state: "degraded".into(),
            after: Duration::from_millis(2345),
        };
        assert_eq!(
            format_report("box", &fixed, &findings),
            "error: box: systemd finished booting as `degraded`, not `running` (2.3 s)\n\
             failed units:\n  broken.service\n\
             last 10 journal lines of broken.service:\n\
             \x20 Nov 30 host systemd[1]: broken.service: failed \\u{1b}[2J\n"
        );
    }

    #[test]
    fn a_timeout_reports_the_last_answer_and_the_queued_jobs() {
        let fake = Fake::new(&[], true);
        let outcome = wait_for_boot(&fake, Duration::from_secs(1));
        assert_eq!(
            outcome,
            Outcome::TimedOut {
                timeout: Duration::from_secs(1),
                last: "starting".into()
            }
        );
        let text = format_report("box", &outcome, &gather(&fake, &outcome));
        assert!(
            text.starts_with(
                "error: box: systemd did not finish booting within 1 s (last: `starting`)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "jobs still queued (systemctl list-jobs):\n  7 slow.service start running\n"
            ),
            "{text}"
        );
    }

    /// A container whose systemd never opens its bus.
    struct NoBus;

    impl Probe for NoBus {
        fn name(&self) -> String {
            "box".into()
        }
        fn exec(&self, _args: &[&str], _limit: Duration) -> ExecOutput {
            ExecOutput {
                code: Some(1),
                stdout: String::new(),
                stderr: "Failed to connect to bus: No such file or directory\n".into(),
            }
        }
        fn is_running(&self) -> Option<bool> {
            Some(true)
        }
        fn logs_tail(&self, _lines: usize) -> String {
            String::new()
        }
    }

    #[test]
    fn a_timeout_before_the_bus_says_the_units_are_unknown() {
        let outcome = wait_for_boot(&NoBus, Duration::from_secs(1));
        let findings = gather(&NoBus, &outcome);
        let text = format_report("box", &outcome, &findings);
        assert_eq!(
            text,
            "error: box: systemd did not finish booting within 1 s (last: `Failed to connect to bus: \
             No such file or directory`)\n\
             the failed units could not be listed: Failed to connect to bus: No such file or directory\n"
        );
    }

    #[test]
    fn a_stopped_container_ends_the_wait_with_its_console_log() {
        let fake = Fake::new(&[("", "Error: container is not running")], false);
        let (code, text) = wait_and_report(&fake, Duration::from_secs(30));
        assert_eq!(code, EXIT_NOT_RUNNING);
        assert!(
            text.contains("the container stopped while systemd was booting")
                && text.ends_with("last lines of the console log:\n  Failed to mount cgroup\n"),
            "{text}"
        );
    }

    #[test]
    fn report_is_terminal_safe_and_bounded() {
        let outcome = Outcome::NotRunning {
            state: "degraded".into(),
            after: Duration::from_secs(2),
        };
        let journal: String = (0..30)
            .map(|i| format!("line {i} \u{2028}\u{202e}{}\n", "x".repeat(1000)))
            .collect();
        let findings = Findings {
            failed: vec![("a.service".into(), journal)],
            ..Findings::default()
        };
        let text = format_report("box\u{1b}]0;t\u{7}", &outcome, &findings);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(!text.contains('\u{2028}') && !text.contains('\u{202e}'));
        assert!(
            text.contains("  line 29 ") && !text.contains("  line 19 "),
            "{text}"
        );
        assert!(
            text.lines()
                .all(|l| l.chars().count() <= MAX_LINE_CHARS + 100)
        );
        assert!(text.contains('…'));
    }

    #[test]
    fn the_hint_quotes_the_container_name() {
        assert_eq!(
            shell_hint("docker", "web"),
            "docker exec web timeout 90 sh -c 'until systemctl is-system-running --wait 2>/dev/null | grep -qvx offline; do sleep 0.3; done; systemctl is-system-running'"
        );
        assert!(shell_hint("podman", "a b").starts_with("podman exec 'a b' timeout"));
    }
}
