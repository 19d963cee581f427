//! The verification report's contract: where the units step writes it, the fixed scripts that
//! write it, the files it holds, and the parse of those files.
//!
//! The units step (the last step of every build) writes a report into a scratch
//! directory that is a second output of that step, never a layer of the image:
//! which unit files existed before it ran, their aliases, the systemd version,
//! what `/sbin/init` is, and after its changes the state of every unit and the
//! image hygiene facts. [`inventory_script`] alone writes the first four files on a
//! filesystem before the units step, when that step fails. The scripts are fixed
//! text; unit names reach them as arguments. Pure: no I/O, no knowledge of the spec.

use std::collections::BTreeMap;

/// Where the report is written: a scratch directory mounted in the units step.
pub const REPORT_DIR: &str = "/run/sysfile-report";

/// Lists unit files (with symlink targets) and `Alias=` lines of each unit directory once (one
/// `find`, one `grep`), the systemd version and `/sbin/init` (asked meanwhile, in the
/// background), and whether an SSH server (`/usr/sbin/sshd`) is installed, into `$out`.
const INVENTORY: &str = r#"# systemd's version and where /sbin/init leads, asked while the unit directories are listed.
{
  systemctl --version > "$out/version" 2>/dev/null || :
  readlink -f /sbin/init > "$out/init" 2>/dev/null || :
} &
asked=$!
# The unit directories, each once: on a merged-/usr image /lib/systemd/system is
# /usr/lib/systemd/system. (Fixed paths without spaces: `$dirs` is split on purpose.)
dirs=
for d in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
  [ -d "$d" ] || continue
  if [ "$d" = /usr/lib/systemd/system ] && [ /lib/systemd/system -ef "$d" ] 2>/dev/null; then continue; fi
  dirs="$dirs $d"
done
if command -v find >/dev/null 2>&1; then
  if [ -n "$dirs" ]; then
    find $dirs -mindepth 1 -maxdepth 1 \( -type f -o -type l \) -printf '%f\t%l\n'
  fi > "$out/units"
else
  for d in $dirs; do
    for f in "$d"/*; do
      [ -e "$f" ] || [ -L "$f" ] || continue
      [ -d "$f" ] && [ ! -L "$f" ] && continue
      t=
      if [ -L "$f" ]; then t=$(readlink "$f"); fi
      printf '%s\t%s\n' "${f##*/}" "$t"
    done
  done > "$out/units"
fi
# Every unit file of every directory to one grep (a function: its own arguments).
aliases() {
  set --
  for d in $dirs; do
    set -- "$@" "$d"/*
  done
  [ "$#" -eq 0 ] || grep -s -H '^Alias=' "$@" || true
}
aliases > "$out/aliases"
if [ -x /usr/sbin/sshd ]; then echo present; fi > "$out/sshd"
wait "$asked" || :
"#;

/// Sets the unit states. Arguments: `--default T [--enable U…] [--disable U…]
/// [--ssh-host-keys UNIT TEXT] [--mask U…]`, in that order. The enabled units go to one
/// `systemctl enable` call and the disabled ones to one `systemctl disable` call; when such a
/// call fails, it is made again unit by unit, so that a failure names its unit: its verb, unit
/// and message go to `$out/failures`, and verification reports them at the spec entry that named
/// the unit (a failed step would show this script, not the unit). The masks go to one
/// `systemctl mask` call, whose failure is recorded for `*`. A failed `systemctl` call does not
/// stop the step. `--ssh-host-keys` writes TEXT as `/etc/systemd/system/UNIT` and enables it
/// only where an SSH server is installed. Also defines what [`RECORD`] runs after the changes:
/// `record_states`, the state of every unit named, after every change (a `disable` also
/// disables the units its `Also=` names), from one `systemctl is-enabled` call; and `facts`,
/// the image hygiene facts.
const CHANGES: &str = r#"# Host keys made by package scripts at build time would be shared by every container.
rm -f /etc/ssh/ssh_host_*
# count_lines FILE: sets $count to its number of lines (as `wc -l`, without a program).
count_lines() {
  count=0
  while IFS= read -r line; do count=$((count + 1)); done < "$1"
}
: > "$out/failures"
: > "$out/states"
# change VERB UNIT ARGS...: systemctl ARGS; its output is shown; a failure is recorded on one line.
change() {
  verb=$1 unit=$2
  shift 2
  if msg=$(systemctl "$@" 2>&1); then
    if [ -n "$msg" ]; then printf '%s\n' "$msg" >&2; fi
  else
    printf '%s\n' "$msg" >&2
    printf '%s\t%s\t%s\n' "$verb" "$unit" "$(printf '%s' "$msg" | tr '\t\n' '  ')" >> "$out/failures"
  fi
}
# record UNIT...: their states, from one is-enabled call when it prints one line per unit.
record() {
  systemctl is-enabled -- "$@" > "$out/raw" 2>/dev/null || true
  count_lines "$out/raw"
  if [ "$count" -eq "$#" ]; then
    for u do
      IFS= read -r s || s=
      printf '%s\t%s\n' "$u" "${s:-not-found}"
    done < "$out/raw" >> "$out/states"
  else
    for u do
      s=$(systemctl is-enabled -- "$u" 2>/dev/null) || true
      printf '%s\t%s\n' "$u" "${s:-not-found}"
    done >> "$out/states"
  fi
}
# group VERB UNIT... [--OPTION ...]: one `systemctl VERB` call for the units before the next
# option (one call per unit when it fails). Sets $n to how many units there were.
group() {
  gverb=$1
  shift
  n=0 all=$#
  for a do
    case "$a" in --*) break ;; esac
    set -- "$@" "$a"
    n=$((n + 1))
  done
  shift "$all"
  if [ "$n" -eq 0 ]; then return 0; fi
  if msg=$(systemctl "$gverb" -- "$@" 2>&1); then
    if [ -n "$msg" ]; then printf '%s\n' "$msg" >&2; fi
  else
    for u do change "$gverb" "$u" "$gverb" -- "$u"; done
  fi
}
# set_units ARGS...: every change the arguments ask for, in their order.
set_units() {
  if [ "${1-}" = --default ]; then
    change set-default "$2" set-default -- "$2"
    shift 2
  fi
  for verb in enable disable; do
    if [ "${1-}" = "--$verb" ]; then
      shift
      group "$verb" "$@"
      shift "$n"
    fi
  done
  if [ "${1-}" = --ssh-host-keys ]; then
    if [ -s "$out/sshd" ]; then
      printf '%s' "$3" > "/etc/systemd/system/$2"
      chmod 0644 "/etc/systemd/system/$2"
      change enable "$2" enable -- "$2"
    fi
    shift 3
  fi
  if [ "${1-}" = --mask ] && [ "$#" -gt 1 ]; then
    shift
    change mask '*' mask -- "$@"
  fi
}
# record_states ARGS...: the state of every unit the arguments name, after every change, from
# one is-enabled call; the SSH host key unit is `no-ssh-server` where it was not written.
record_states() {
  nossh=
  set -- "$@" --end
  while [ "$1" != --end ]; do
    a=$1
    shift
    case "$a" in
      --default) shift ;;
      --enable|--disable|--mask) ;;
      --ssh-host-keys)
        if [ -s "$out/sshd" ]; then set -- "$@" "$1"; else nossh=$1; fi
        shift 2 ;;
      *) set -- "$@" "$a" ;;
    esac
  done
  shift
  if [ "$#" -gt 0 ]; then record "$@"; fi
  if [ -n "$nossh" ]; then printf '%s\tno-ssh-server\n' "$nossh" >> "$out/states"; fi
}
# facts: the default target, the machine ID and the files the image hygiene removes.
facts() {
  # What `systemctl get-default` prints, without a second systemctl: the unit the link ends at.
  t=$(readlink -f /etc/systemd/system/default.target 2>/dev/null) || t=
  printf 'default\t%s\n' "${t##*/}"
  if [ -f /etc/machine-id ] && [ ! -s /etc/machine-id ]; then printf 'machine-id\tempty\n'; else printf 'machine-id\tnot-empty\n'; fi
  for f in /var/lib/systemd/random-seed /var/lib/systemd/credential.secret /var/lib/dbus/machine-id /usr/sbin/policy-rc.d /etc/ssh/ssh_host_*; do
    if [ -e "$f" ]; then printf 'present\t%s\n' "$f"; fi
  done
}
set_units "$@"
"#;

/// Defines `audit_units`, which [`RECORD`] runs after the changes: what the unit audit reads,
/// written to `$out/audit`: every unit file in
/// `/etc/systemd/system` (where `[[files]]` puts units; links resolved, masks skipped), every
/// unit enabled there (the targets of the links in its `*.wants/` and `*.requires/` directories)
/// and every drop-in there, each as a `file KIND NAME PATH LENGTH` line followed by its text and
/// a newline (files over 64 KiB skipped; a last line without a newline gets one), then one
/// `exec PATH yes|no` line per path an `ExecStart=` program may be. A fixed number of programs
/// run whatever the number of files (one `readlink` for every link, one `awk` reading every
/// file), so the audit costs the step little. Values are only ever data: paths reach `test`,
/// `readlink` and awk's `getline` as arguments or variables, never as code. Without `awk` there
/// is nothing to audit.
const AUDIT: &str = r#"audit_units() {
  command -v awk >/dev/null 2>&1 || return 0
  d=/etc/systemd/system
  {
    for f in "$d"/*; do
      case "${f##*/}" in
        *.service|*.socket|*.timer|*.path|*.mount|*.automount|*.swap|*.target) ;;
        *) continue ;;
      esac
      # Masks (links to /dev/null) and dangling links are not regular files.
      [ -f "$f" ] || continue
      printf 'unit\t%s\t%s\n' "${f##*/}" "$f"
    done
    for f in "$d"/*.wants/* "$d"/*.requires/*; do
      [ -L "$f" ] && [ -f "$f" ] || continue
      printf 'enabled\t%s\t%s\n' "${f##*/}" "$f"
    done
    for f in "$d"/*.d/*.conf; do
      [ -f "$f" ] || continue
      u=${f%/*}
      u=${u##*/}
      printf 'dropin\t%s\t%s\n' "${u%.d}" "$f"
    done
  } > "$out/found"
  set --
  while IFS='	' read -r kind name path; do set -- "$@" "$path"; done < "$out/found"
  [ "$#" -gt 0 ] || return 0
  # Where each one is, links resolved: one line per file, or no audit.
  readlink -f -- "$@" > "$out/resolved" || return 0
  count_lines "$out/resolved"
  [ "$count" -eq "$#" ] || return 0
  LC_ALL=C awk -v found="$out/found" -v resolved="$out/resolved" -v programs="$out/programs" '
BEGIN {
  printf "" > programs
  while ((getline entry < found) > 0 && (getline path < resolved) > 0) {
    split(entry, f, "\t")
    if (f[1] == "dropin") path = f[3]
    text = ""
    execs = ""
    big = 0
    while ((getline line < path) > 0) {
      text = text line "\n"
      if (length(text) > 65536) { big = 1; break }
      if (line ~ /^[ \t]*ExecStart[ \t]*=/) {
        p = line
        sub(/^[ \t]*ExecStart[ \t]*=[ \t]*/, "", p)
        sub(/^[-@:+!|]+/, "", p)
        sub(/[ \t\r].*$/, "", p)
        # Each program once.
        if (!(p in seen)) { seen[p] = 1; execs = execs p "\n" }
      }
    }
    close(path)
    if (big) continue
    printf "file\t%s\t%s\t%s\t%d\n%s\n", f[1], f[2], path, length(text), text
    printf "%s", execs > programs
  }
}'
  while IFS= read -r p; do
    case "$p" in
      ''|*[%\$\\\"\']*) continue ;;
      /*) set -- "$p" ;;
      */*) continue ;;
      *) set -- "/usr/local/sbin/$p" "/usr/local/bin/$p" "/usr/sbin/$p" "/usr/bin/$p" "/sbin/$p" "/bin/$p" ;;
    esac
    for c do
      if [ -f "$c" ] && [ -x "$c" ]; then r=yes; else r=no; fi
      printf 'exec\t%s\t%s\n' "$c" "$r"
    done
  done < "$out/programs"
}
"#;

/// After the changes everything only reads: the facts and the unit audit are collected in the
/// background while `systemctl is-enabled` is asked for the states (a failure of the facts
/// fails the step, as in the foreground; the audit's never does).
const RECORD: &str = r#"facts > "$out/facts" &
facts_job=$!
{ audit_units || true; } > "$out/audit" &
audit_job=$!
record_states "$@"
wait "$facts_job"
wait "$audit_job" || true
rm -f "$out/raw" "$out/found" "$out/resolved" "$out/programs"
"#;

/// The units step's script: inventory, changes, report, what the unit audit reads. A failed
/// `systemctl` call is recorded in the report, not a failure of the step.
pub fn units_script() -> String {
    format!("set -eu\nout={REPORT_DIR}\n{INVENTORY}{CHANGES}{AUDIT}{RECORD}")
}

/// The inventory alone, for a report-only step on the filesystem before the units step; the
/// report directory is its first argument.
pub fn inventory_script() -> String {
    format!("set -u\nout=$1\n{INVENTORY}exit 0\n")
}

/// The files of a units-step report; the first five are the inventory's.
pub const REPORT_FILES: [&str; 9] = [
    "units", "aliases", "version", "init", "sshd", "states", "facts", "failures", "audit",
];

/// What the inventory found in the filesystem before the units were set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Unit file names, with the symlink target for links.
    pub units: BTreeMap<String, String>,
    /// Alias name → the unit whose `[Install]` section declares it.
    pub aliases: BTreeMap<String, String>,
    /// The systemd major version (`systemd 252 (…)` → 252).
    pub systemd_version: Option<u32>,
    /// Where `/sbin/init` resolves to (empty when it does not exist).
    pub init: String,
    /// An SSH server (`/usr/sbin/sshd`) is installed.
    pub ssh_server: bool,
}

impl Inventory {
    pub fn parse(units: &str, aliases: &str, version: &str, init: &str, sshd: &str) -> Inventory {
        let units = units
            .lines()
            .filter_map(|l| {
                let (name, target) = l.split_once('\t').unwrap_or((l, ""));
                (!name.is_empty()).then(|| (name.to_string(), target.to_string()))
            })
            .collect();
        // `grep -H` lines: `/lib/systemd/system/ssh.service:Alias=sshd.service`.
        let aliases = aliases
            .lines()
            .filter_map(|l| l.split_once(":Alias="))
            .map(|(path, names)| (path.rsplit('/').next().unwrap_or(path), names))
            .flat_map(|(unit, names)| {
                names
                    .split_whitespace()
                    .map(move |alias| (alias.to_string(), unit.to_string()))
            })
            .collect();
        let systemd_version = version
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok());
        Inventory {
            units,
            aliases,
            systemd_version,
            init: init.trim().to_string(),
            ssh_server: sshd.trim() == "present",
        }
    }

    /// Whether `/sbin/init` is systemd.
    pub fn init_is_systemd(&self) -> bool {
        self.init.rsplit('/').next() == Some("systemd")
    }

    /// What a unit name is in this filesystem: a unit, an alias of another unit, or nothing.
    pub fn lookup(&self, unit: &str) -> Lookup {
        if let Some(real) = self.aliases.get(unit) {
            if real != unit {
                return Lookup::Alias(real.clone());
            }
        }
        if let Some(target) = self.units.get(unit) {
            let real = target.rsplit('/').next().unwrap_or("");
            // A link to another unit file is an alias; a link to /dev/null is a mask.
            if !target.is_empty() && target != "/dev/null" && real != unit && real.contains('.') {
                return Lookup::Alias(real.to_string());
            }
            return Lookup::Unit;
        }
        // An instance `foo@bar.service` exists when the template `foo@.service` does.
        match (unit.split_once('@'), unit.rsplit_once('.')) {
            (Some((prefix, _)), Some((_, suffix)))
                if self.units.contains_key(&format!("{prefix}@.{suffix}")) =>
            {
                Lookup::Unit
            }
            _ => Lookup::Missing,
        }
    }
}

/// What a unit name is in an inventoried filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A unit file (or an instance of a template unit file).
    Unit,
    /// An alias of the named unit.
    Alias(String),
    /// Nothing of that name.
    Missing,
}

/// A `systemctl` call of the units step that failed (`$out/failures`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// `set-default`, `enable`, `disable` or `mask`.
    pub verb: String,
    /// The unit named (`*` for the one `mask` call of every masked unit).
    pub unit: String,
    /// What systemctl said, on one line.
    pub message: String,
}

impl Failure {
    pub fn parse_all(text: &str) -> Vec<Failure> {
        text.lines()
            .filter_map(|l| {
                let mut fields = l.splitn(3, '\t');
                let (verb, unit) = (fields.next()?, fields.next()?);
                Some(Failure {
                    verb: verb.to_string(),
                    unit: unit.to_string(),
                    message: fields.next().unwrap_or("").trim().to_string(),
                })
            })
            .collect()
    }
}

/// Where a file the units step collected for the unit audit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectedKind {
    /// A unit file in `/etc/systemd/system`.
    Unit,
    /// The file of a unit enabled in `/etc/systemd/system` (a link in a `.wants`/`.requires`
    /// directory, resolved); its name is the link's (an instance keeps its own name).
    Enabled,
    /// A drop-in `/etc/systemd/system/NAME.d/*.conf`; its name is the unit's.
    DropIn,
}

/// One file of `$out/audit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectedFile {
    pub kind: CollectedKind,
    pub name: String,
    pub path: String,
    pub text: String,
}

/// What the units step collected for the unit audit (`$out/audit`): unit files and whether
/// each path an `ExecStart=` program may be is an executable file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub files: Vec<CollectedFile>,
    pub executables: BTreeMap<String, bool>,
}

impl Collected {
    /// At most this many files are read from one report.
    pub const MAX_FILES: usize = 4096;

    /// Parses `file KIND NAME PATH LENGTH` records (the header line, then LENGTH bytes and a
    /// newline) and `exec PATH yes|no` lines. Anything else, a record cut short or a length
    /// that does not fit, ends the parse with what was read so far.
    pub fn parse(bytes: &[u8]) -> Collected {
        let mut collected = Collected::default();
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let header = String::from_utf8_lossy(&rest[..newline]).into_owned();
            rest = &rest[newline + 1..];
            let fields: Vec<&str> = header.split('\t').collect();
            match fields.as_slice() {
                ["exec", path, answer] => {
                    collected
                        .executables
                        .insert((*path).to_string(), *answer == "yes");
                }
                ["file", kind, name, path, length] => {
                    let kind = match *kind {
                        "unit" => CollectedKind::Unit,
                        "enabled" => CollectedKind::Enabled,
                        "dropin" => CollectedKind::DropIn,
                        _ => break,
                    };
                    let Some(length) = length.parse::<usize>().ok().filter(|n| *n <= rest.len())
                    else {
                        break;
                    };
                    if collected.files.len() < Collected::MAX_FILES {
                        collected.files.push(CollectedFile {
                            kind,
                            name: (*name).to_string(),
                            path: (*path).to_string(),
                            text: String::from_utf8_lossy(&rest[..length]).into_owned(),
                        });
                    }
                    rest = &rest[length..];
                    rest = rest.strip_prefix(b"\n").unwrap_or(rest);
                }
                [""] => {}
                _ => break,
            }
        }
        collected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_inventory() {
        let inv = Inventory::parse(
            "ssh.service\t\nsshd.service\tssh.service\ngetty@.service\t\n",
            "/lib/systemd/system/ssh.service:Alias=sshd.service\n",
            "systemd 252 (252.39-1~deb12u2)\n",
            "/usr/lib/systemd/systemd\n",
            "present\n",
        );
        assert!(inv.ssh_server);
        assert_eq!(inv.systemd_version, Some(252));
        assert!(inv.init_is_systemd());
        assert_eq!(inv.lookup("getty@tty1.service"), Lookup::Unit);
        assert_eq!(inv.lookup("ssh.service"), Lookup::Unit);
        assert_eq!(
            inv.lookup("sshd.service"),
            Lookup::Alias("ssh.service".into())
        );
        assert_eq!(inv.lookup("nope.service"), Lookup::Missing);
    }

    #[test]
    fn the_units_script_writes_every_report_file() {
        let script = units_script();
        for file in REPORT_FILES {
            assert!(
                script.contains(&format!("\"$out/{file}\"")),
                "{file} is never written"
            );
        }
        assert!(script.contains(&format!("out={REPORT_DIR}")));
        let inventory = inventory_script();
        for file in &REPORT_FILES[..5] {
            assert!(
                inventory.contains(&format!("\"$out/{file}\"")),
                "{file} is never written"
            );
        }
    }

    #[test]
    fn parses_collected_unit_files_and_programs() {
        let text = "a\tb\n[Service]\nExecStart=/x\n";
        let mut report = format!(
            "file\tunit\tweb.service\t/etc/systemd/system/web.service\t{}\n{text}\n",
            text.len()
        )
        .into_bytes();
        report.extend_from_slice(
            b"file\tdropin\tweb.service\t/etc/systemd/system/web.service.d/a.conf\t3\n\xff\n\n\n",
        );
        report.extend_from_slice(b"exec\t/x\tno\nexec\t/usr/bin/y\tyes\n");
        let collected = Collected::parse(&report);
        assert_eq!(collected.files.len(), 2);
        assert_eq!(collected.files[0].text, text);
        assert_eq!(collected.files[0].kind, CollectedKind::Unit);
        assert_eq!(collected.files[1].kind, CollectedKind::DropIn);
        assert_eq!(collected.files[1].text, "\u{fffd}\n\n");
        assert_eq!(collected.executables.get("/x"), Some(&false));
        assert_eq!(collected.executables.get("/usr/bin/y"), Some(&true));
        // A length past the end, or garbage, stops the parse without a panic.
        for bad in [
            &b"file\tunit\ta\t/a\t999\nxx"[..],
            b"file\tunit\ta\t/a\t-1\n",
            b"\xff\t\n",
        ] {
            assert!(Collected::parse(bad).files.is_empty());
        }
    }

    #[test]
    fn parses_failures() {
        let failures =
            Failure::parse_all("enable\tx.service\tFailed to enable unit: nope\nmask\t*\t\n");
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].unit, "x.service");
        assert_eq!(failures[0].message, "Failed to enable unit: nope");
        assert_eq!(failures[1].verb, "mask");
    }
}
