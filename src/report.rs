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

/// Lists unit files (with symlink targets), `Alias=` lines, the systemd version and `/sbin/init`
/// into `$out`.
const INVENTORY: &str = r#"if command -v find >/dev/null 2>&1; then
  for d in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
    [ -d "$d" ] || continue
    find "$d" -mindepth 1 -maxdepth 1 \( -type f -o -type l \) -printf '%f\t%l\n'
  done > "$out/units"
else
  for d in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
    [ -d "$d" ] || continue
    for f in "$d"/*; do
      [ -e "$f" ] || [ -L "$f" ] || continue
      [ -d "$f" ] && [ ! -L "$f" ] && continue
      t=
      if [ -L "$f" ]; then t=$(readlink "$f"); fi
      printf '%s\t%s\n' "${f##*/}" "$t"
    done
  done > "$out/units"
fi
for d in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
  [ -d "$d" ] || continue
  grep -s -H '^Alias=' "$d"/* || true
done > "$out/aliases"
(systemctl --version 2>/dev/null || true) | head -n 1 > "$out/version"
(readlink -f /sbin/init 2>/dev/null || true) > "$out/init"
"#;

/// Sets the unit states. Arguments: `--default T [--enable U…] [--disable U…] [--mask U…]`, masks
/// last so that the long list goes to one `systemctl mask` call. Records the state of every
/// enabled and disabled unit before masking, then of every masked one.
const CHANGES: &str = r#"# Host keys made by package scripts at build time would be shared by every container.
rm -f /etc/ssh/ssh_host_*
mode=
for arg do
  case "$arg" in
    --default|--enable|--disable|--mask) mode=$arg ;;
    *)
      case "$mode" in
        --default) systemctl set-default -- "$arg" ;;
        --enable) systemctl enable -- "$arg" ;;
        --disable) systemctl disable -- "$arg" ;;
      esac
      ;;
  esac
done
: > "$out/states"
for arg do
  case "$arg" in
    --default|--enable|--disable|--mask) mode=$arg ;;
    *)
      case "$mode" in
        --enable|--disable)
          s=$(systemctl is-enabled -- "$arg" 2>/dev/null) || true
          printf '%s\t%s\n' "$arg" "${s:-not-found}" >> "$out/states"
          ;;
      esac
      ;;
  esac
done
while [ "$#" -gt 0 ] && [ "$1" != --mask ]; do shift; done
if [ "$#" -gt 1 ]; then
  shift
  systemctl mask -- "$@"
  # One is-enabled call prints one state per unit, in order; one call per unit if counts differ.
  systemctl is-enabled -- "$@" > "$out/raw" 2>/dev/null || true
  if [ "$(wc -l < "$out/raw")" -eq "$#" ]; then
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
  rm -f "$out/raw"
fi
{
  printf 'default\t%s\n' "$(systemctl get-default 2>/dev/null || true)"
  if [ -f /etc/machine-id ] && [ ! -s /etc/machine-id ]; then printf 'machine-id\tempty\n'; else printf 'machine-id\tnot-empty\n'; fi
  for f in /var/lib/systemd/random-seed /var/lib/systemd/credential.secret /var/lib/dbus/machine-id /usr/sbin/policy-rc.d /etc/ssh/ssh_host_*; do
    if [ -e "$f" ]; then printf 'present\t%s\n' "$f"; fi
  done
} > "$out/facts"
"#;

/// The units step's script: inventory, changes, report. It fails (and the build with it) when a
/// `systemctl` call fails.
pub fn units_script() -> String {
    format!("set -eu\nout={REPORT_DIR}\n{INVENTORY}{CHANGES}")
}

/// The inventory alone, for a report-only step on the filesystem before the units step; the
/// report directory is its first argument.
pub fn inventory_script() -> String {
    format!("set -u\nout=$1\n{INVENTORY}exit 0\n")
}

/// The files of a units-step report.
pub const REPORT_FILES: [&str; 6] = ["units", "aliases", "version", "init", "states", "facts"];

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
}

impl Inventory {
    pub fn parse(units: &str, aliases: &str, version: &str, init: &str) -> Inventory {
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
        );
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
        for file in &REPORT_FILES[..4] {
            assert!(
                inventory.contains(&format!("\"$out/{file}\"")),
                "{file} is never written"
            );
        }
    }
}
