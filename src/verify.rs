//! Build-time verification: what the frontend checks inside the built filesystem before returning it.
//!
//! The units step (the last step of every build) writes a report into a scratch
//! directory that is a second output of that step, never a layer of the image:
//! which unit files existed before it ran, their aliases, the systemd version,
//! what `/sbin/init` is, and after its changes the state of every unit and the
//! image hygiene facts. When the units step itself fails, the frontend runs
//! [`inventory_script`] alone on the filesystem before it, to say which unit
//! name was wrong. The scripts are fixed text; unit names reach them as
//! arguments. Parsing the reports and turning them into diagnostics is pure.

use std::collections::BTreeMap;

use crate::diag::{Code, Diagnostic, Span};
use crate::model::{Spec, Unit};
use crate::plan::Plan;

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
    fn lookup(&self, unit: &str) -> Lookup {
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

enum Lookup {
    Unit,
    Alias(String),
    Missing,
}

/// Which cgroup versions can boot an image with this systemd (`sysfile.systemd.cgroup`): up to
/// 257 both (the host matrix boots 252 and 257 on cgroup v1 without any forcing), from 258 only v2
/// (systemd 258 removed cgroup v1; 262 exits 255 on a v1 host).
pub fn cgroup_support(systemd_version: u32) -> &'static str {
    match systemd_version {
        0..=257 => "v1,v2",
        _ => "v2",
    }
}

/// Checks that every unit the spec names exists (before the units step runs).
pub fn check_inventory(spec: &Spec, inventory: &Inventory) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut require = |unit: &Unit, what: &str, severity_error: bool| {
        let (message, help) = match inventory.lookup(&unit.name) {
            Lookup::Unit => return,
            Lookup::Alias(real) => (
                format!("`{}` is an alias, and systemctl refuses to {what} an alias", unit.name),
                format!("name the unit itself: `{}`", real.strip_suffix(".service").unwrap_or(&real)),
            ),
            Lookup::Missing => (
                format!("there is no unit `{}` in the image to {what}", unit.name),
                match nearest(&unit.name, inventory.units.keys()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => "install the package that ships it in [packages] install, or add the unit file with [[files]]"
                        .to_string(),
                },
            ),
        };
        let d = if severity_error {
            Diagnostic::error(Code::UnknownUnit, unit.span, message)
        } else {
            Diagnostic::warning(Code::UnknownUnit, unit.span, message)
        };
        diagnostics.push(
            d.with_label(
                "checked in /etc/systemd/system, /lib/systemd/system and /usr/lib/systemd/system",
            )
            .with_help(help),
        );
    };
    for unit in &spec.services.enable {
        require(unit, "enable", true);
    }
    for unit in &spec.services.disable {
        require(unit, "disable", true);
    }
    for unit in &spec.services.mask {
        require(unit, "mask", false);
    }
    require(&spec.systemd.target, "boot to", true);
    diagnostics
}

fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    let (stem, suffix) = name.rsplit_once('.').unwrap_or((name, ""));
    candidates
        .filter(|c| c.ends_with(&format!(".{suffix}")))
        .map(|c| {
            let other = c.rsplit_once('.').map_or(c.as_str(), |(s, _)| s);
            (strsim::jaro_winkler(stem, other), c)
        })
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.as_str())
}

/// Compares the final unit states and hygiene facts with the plan.
pub fn check_state(spec: &Spec, plan: &Plan, states: &str, facts: &str) -> Vec<Diagnostic> {
    let states: BTreeMap<&str, &str> = states.lines().filter_map(|l| l.split_once('\t')).collect();
    let span_of = |name: &str| -> Span {
        spec.services
            .enable
            .iter()
            .chain(&spec.services.disable)
            .chain(&spec.services.mask)
            .find(|u| u.name == name)
            .map_or(crate::plan::finalize_span(spec), |u| u.span)
    };
    let mut diagnostics = Vec::new();
    let mut expect = |unit: &str, wanted: &str, accepted: &[&str]| {
        let found = states.get(unit).copied().unwrap_or("not checked");
        if !accepted.contains(&found) {
            diagnostics.push(
                Diagnostic::error(
                    Code::UnitState,
                    span_of(unit),
                    format!("`{unit}` should be {wanted} in the image, but `systemctl is-enabled` says `{found}`"),
                )
                .with_help("a `static` unit has no [Install] section (add `WantedBy=multi-user.target` to it, or let another unit pull it in); otherwise check that no later [[run]] step changes it"),
            );
        }
    };
    for unit in &plan.enabled_units {
        // `static` and `indirect` units have no [Install] section of their own: `systemctl
        // enable` succeeds and changes nothing, and the unit never starts at boot.
        expect(unit, "enabled", &["enabled", "enabled-runtime"]);
    }
    for unit in &plan.disabled_units {
        expect(unit, "disabled", &["disabled", "static", "indirect"]);
    }
    for unit in &plan.masked_units {
        expect(unit, "masked", &["masked", "masked-runtime"]);
    }
    for line in facts.lines() {
        match line.split_once('\t') {
            Some(("default", target)) if target != plan.default_target => diagnostics.push(Diagnostic::error(
                Code::DefaultTarget,
                crate::plan::finalize_span(spec),
                format!("the default target is `{target}`, not `{}`", plan.default_target),
            )),
            Some(("machine-id", "not-empty")) => diagnostics.push(Diagnostic::error(
                Code::ImageHygiene,
                crate::plan::finalize_span(spec),
                "/etc/machine-id is not an empty file in the image: every container would share one machine ID",
            )),
            Some(("present", path)) => diagnostics.push(
                Diagnostic::error(
                    Code::ImageHygiene,
                    crate::plan::finalize_span(spec),
                    format!("{path} is in the image: it must be created per container, not baked in"),
                )
                .with_help("a [[run]] step in the after-packages phase may have recreated it; remove it there"),
            ),
            _ => {}
        }
    }
    diagnostics
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
        assert!(matches!(inv.lookup("getty@tty1.service"), Lookup::Unit));
        assert!(matches!(inv.lookup("ssh.service"), Lookup::Unit));
        assert!(matches!(inv.lookup("sshd.service"), Lookup::Alias(real) if real == "ssh.service"));
        assert!(matches!(inv.lookup("nope.service"), Lookup::Missing));
        assert_eq!(cgroup_support(252), "v1,v2");
        assert_eq!(cgroup_support(257), "v1,v2");
        assert_eq!(cgroup_support(258), "v2");
    }

    #[test]
    fn nearest_prefers_close_names_with_the_same_suffix() {
        let units = [
            "nginx.service".to_string(),
            "ngircd.service".to_string(),
            "nginx.socket".to_string(),
        ];
        assert_eq!(
            nearest("ngnix.service", units.iter()),
            Some("nginx.service")
        );
        assert_eq!(nearest("postgresql.service", units.iter()), None);
    }

    #[test]
    fn a_static_unit_is_not_enabled() {
        let text = "[image]\nfrom = \"debian\"\n[services]\nenable = [\"oneshot\"]\n";
        let loaded = crate::spec::load(
            crate::diag::SourceFile::new("Sysfile", text),
            &Default::default(),
        );
        let spec = loaded.spec.expect("loads");
        let plan = crate::plan::plan(
            &spec,
            &crate::plan::BaseFacts::assumed(crate::distro::Family::Fedora),
        );
        let mut states: String = plan
            .masked_units
            .iter()
            .map(|u| format!("{u}\tmasked\n"))
            .collect();
        states.push_str("oneshot.service\tstatic\n");
        let facts = "default\tmulti-user.target\nmachine-id\tempty\n";
        let diagnostics = check_state(&spec, &plan, &states, facts);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert!(
            diagnostics[0]
                .message
                .contains("`oneshot.service` should be enabled")
        );
        assert!(
            diagnostics[0]
                .help
                .as_deref()
                .unwrap_or("")
                .contains("[Install]")
        );
        states = states.replace("static", "enabled");
        assert!(check_state(&spec, &plan, &states, facts).is_empty());
    }
}
