//! Build-time verification: the pure checks that turn a units-step report into located diagnostics.
//!
//! The report itself (directory, scripts, files, parse) is [`crate::report`]'s; this module
//! compares what it found with the spec and the plan: unit names that do not exist or are
//! aliases (with the nearest name), unit states that did not take (`static` units), `systemctl`
//! calls that failed, the default target, image hygiene, and the unit audit of every unit the
//! units step collected ([`crate::audit`], driven by its measured table).

use std::collections::{BTreeMap, BTreeSet};

use crate::audit::{self, UnitFile};
use crate::diag::{Code, Diagnostic, Severity, Span};
use crate::model::{Spec, Unit, path_holds};
use crate::plan::{Plan, SSH_KEYGEN_UNIT};
use crate::report::{Collected, CollectedKind, Failure, Inventory, Lookup};

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
        if unit == SSH_KEYGEN_UNIT {
            // Written and enabled only where an SSH server is installed.
            expect(unit, "enabled", &["enabled", "no-ssh-server"]);
        } else {
            expect(unit, "enabled", &["enabled", "enabled-runtime"]);
        }
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

/// The `systemctl` calls of the units step that failed, each at the entry that named its unit.
pub fn check_failures(spec: &Spec, failures: &[Failure]) -> Vec<Diagnostic> {
    failures
        .iter()
        .map(|f| {
            let span = if f.verb == "set-default" {
                crate::plan::finalize_span(spec)
            } else {
                entry_of_unit(spec, &f.unit)
            };
            let what = if f.unit == "*" {
                format!("`systemctl {}` of the masked units failed", f.verb)
            } else {
                format!("`systemctl {} {}` failed", f.verb, f.unit)
            };
            let said = if f.message.is_empty() {
                "it printed nothing".to_string()
            } else {
                format!("it said: {}", f.message)
            };
            Diagnostic::error(
                Code::UnitChangeFailed,
                span,
                format!("the units step could not set the unit states: {what}; {said}"),
            )
            .with_label("the units step, the last step of the build, runs this")
        })
        .collect()
}

/// The entry of `[services]` (or `[systemd] target`) that names `unit`; else where the
/// finalisation steps point.
fn entry_of_unit(spec: &Spec, unit: &str) -> Span {
    spec.services
        .enable
        .iter()
        .chain(&spec.services.disable)
        .chain(&spec.services.mask)
        .chain([&spec.systemd.target])
        .find(|u| u.name == unit && u.span.start != u.span.end)
        .map_or(crate::plan::finalize_span(spec), |u| u.span)
}

/// The unit audit of what the units step collected: every unit file in `/etc/systemd/system`,
/// every unit enabled there and their drop-ins.
///
/// A finding is located at the `[[files]]` entry that wrote the file it is in, else at the
/// `[services] enable` entry naming the unit. It is an error when the audit says it fails on
/// every host kind and the unit starts at boot (it is enabled, triggered by an enabled timer or
/// socket, or pulled in by a starting unit); otherwise a warning, reported only for a unit that
/// a spec entry installed or enabled (the stock units of packages are not the spec's to fix).
pub fn check_units(
    spec: &Spec,
    plan: &Plan,
    inventory: &Inventory,
    collected: &Collected,
) -> Vec<Diagnostic> {
    // Each unit's main file (the first record naming it; one file is audited once) and drop-ins.
    let mut mains: BTreeMap<&str, &crate::report::CollectedFile> = BTreeMap::new();
    let mut seen_paths = BTreeSet::new();
    let mut dropins: BTreeMap<&str, Vec<&crate::report::CollectedFile>> = BTreeMap::new();
    let mut enabled: BTreeSet<&str> = BTreeSet::new();
    for file in &collected.files {
        match file.kind {
            CollectedKind::DropIn => dropins.entry(&file.name).or_default().push(file),
            CollectedKind::Unit | CollectedKind::Enabled => {
                if file.kind == CollectedKind::Enabled {
                    enabled.insert(&file.name);
                }
                if !mains.contains_key(file.name.as_str()) && seen_paths.insert(&file.path) {
                    mains.insert(&file.name, file);
                }
            }
        }
    }
    let masked = |u: &str| {
        plan.masked_units.iter().any(|m| m == u)
            || inventory.units.get(u).is_some_and(|t| t == "/dev/null")
    };
    enabled.extend(plan.enabled_units.iter().map(String::as_str));
    enabled.retain(|u| !masked(u));
    let starting = starting_units(&mains, &enabled, &masked);
    let unit_exists = |u: &str| {
        inventory.units.contains_key(u)
            || mains.contains_key(u)
            || (u == SSH_KEYGEN_UNIT && inventory.ssh_server)
    };
    // A `[[files]]` destination may be written after the units step (so it is not known here).
    let executable = |p: &str| {
        if spec
            .files
            .iter()
            .any(|f| f.writes() && path_holds(&f.dest, p))
        {
            return None;
        }
        collected.executables.get(p).copied()
    };
    let facts = audit::Facts {
        masked: &masked,
        unit_exists: &unit_exists,
        executable: &executable,
    };

    let mut diagnostics = Vec::new();
    // A masked unit never starts, even with an enabling link left behind.
    for (name, main) in mains.iter().filter(|(name, _)| !masked(name)) {
        let mut files = vec![*main];
        let template = instance_template(name);
        for key in [Some(*name), template.as_deref()].into_iter().flatten() {
            if let Some(more) = dropins.get(key) {
                files.extend(more.iter().copied());
            }
        }
        let unit_files: Vec<UnitFile> = files
            .iter()
            .map(|f| UnitFile {
                path: &f.path,
                text: &f.text,
            })
            .collect();
        for finding in audit::audit_unit(name, &unit_files, &facts) {
            let path = &files[finding.file].path;
            let entry = spec
                .files
                .iter()
                .rev()
                .find(|f| f.writes() && path_holds(&f.dest, path))
                .map(|f| f.span)
                .or_else(|| {
                    spec.services
                        .enable
                        .iter()
                        .find(|u| u.name == *name)
                        .map(|u| u.span)
                });
            let certain = finding.severity == Severity::Error && starting.contains(*name);
            let Some(span) = entry.or_else(|| certain.then(|| crate::plan::finalize_span(spec)))
            else {
                continue;
            };
            let code = finding.kind.code();
            let message = format!("{} ({path}, line {})", finding.message, finding.line);
            let diagnostic = if certain {
                Diagnostic::error(code, span, message)
            } else {
                Diagnostic::warning(code, span, message)
            };
            diagnostics.push(
                diagnostic
                    .with_label(format!("{name} comes from here"))
                    .with_help(audit_help(finding.kind, name)),
            );
        }
    }
    diagnostics
}

/// `foo@.service` for `foo@bar.service`.
fn instance_template(name: &str) -> Option<String> {
    let (prefix, rest) = name.split_once('@')?;
    let (instance, suffix) = rest.rsplit_once('.')?;
    (!instance.is_empty()).then(|| format!("{prefix}@.{suffix}"))
}

/// The units that start at boot, as far as the collected files tell: the enabled ones, the
/// services their timers and sockets trigger, and what starting units require or want.
fn starting_units<'a>(
    mains: &BTreeMap<&'a str, &'a crate::report::CollectedFile>,
    enabled: &BTreeSet<&'a str>,
    masked: &dyn Fn(&str) -> bool,
) -> BTreeSet<String> {
    let mut starting: BTreeSet<String> = enabled.iter().map(|u| u.to_string()).collect();
    let mut queue: Vec<String> = starting.iter().cloned().collect();
    while let Some(unit) = queue.pop() {
        let Some(file) = mains.get(unit.as_str()) else {
            continue;
        };
        let directives = audit::parse_unit(&[UnitFile {
            path: &file.path,
            text: &file.text,
        }]);
        let mut pulled: Vec<String> = directives
            .iter()
            .filter(|d| {
                (d.section == "Unit" && matches!(d.key.as_str(), "Requires" | "Wants" | "BindsTo"))
                    || (d.section == "Timer" && d.key == "Unit")
                    || (d.section == "Socket" && d.key == "Service")
            })
            .flat_map(|d| d.value.split_whitespace().map(str::to_string))
            .collect();
        for kind in [".timer", ".socket"] {
            if let Some(stem) = unit.strip_suffix(kind) {
                pulled.push(format!("{stem}.service"));
            }
        }
        for next in pulled.into_iter().filter(|u| !masked(u)) {
            if starting.insert(next.clone()) {
                queue.push(next);
            }
        }
    }
    starting
}

fn audit_help(kind: audit::FindingKind, unit: &str) -> String {
    match kind {
        audit::FindingKind::Setting { key } => format!(
            "system containers run without the privileges this setting needs (docs/unit-audit.md \
             lists what each setting does there); drop it, or override it with a drop-in: \
             [[files]] dest = \"/etc/systemd/system/{unit}.d/container.conf\" with content \
             \"[Service]\\n{key}=\\n\" (an empty value resets it)"
        ),
        audit::FindingKind::MaskedDependency => {
            "keep the unit it needs with [systemd] keep, or drop the dependency".to_string()
        }
        audit::FindingKind::MissingProgram => {
            "install the package that provides the program, or correct the path".to_string()
        }
        audit::FindingKind::MissingService => {
            "add the service unit, or name an existing one with `Unit=` (timers) or `Service=` \
             (sockets)"
                .to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The spec `text` loads to and its plan on a base of `family`.
    fn planned(text: &str, family: crate::distro::Family) -> (Spec, Plan) {
        let loaded = crate::spec::load(
            crate::diag::SourceFile::new("Sysfile", text),
            &Default::default(),
        );
        let spec = loaded.spec.expect("loads");
        let plan = crate::plan::plan(
            &spec,
            &crate::plan::BaseFacts::assumed(family),
            crate::plan::Order::Graph,
        );
        (spec, plan)
    }

    fn collected(records: &[(&str, &str, &str, &str)], programs: &[(&str, bool)]) -> Collected {
        let mut text = String::new();
        for (kind, name, path, body) in records {
            text.push_str(&format!(
                "file\t{kind}\t{name}\t{path}\t{}\n{body}\n",
                body.len()
            ));
        }
        for (path, yes) in programs {
            text.push_str(&format!(
                "exec\t{path}\t{}\n",
                if *yes { "yes" } else { "no" }
            ));
        }
        Collected::parse(text.as_bytes())
    }

    #[test]
    fn the_unit_audit_follows_timers_skips_masks_and_reads_drop_ins() {
        let text = "[image]\nfrom = \"debian\"\n[[files]]\ndest = \"/etc/systemd/system/job.service\"\ncontent = \"[Service]\\nDynamicUser=yes\\nExecStart=/usr/bin/job\\n\"\n[[files]]\ndest = \"/etc/systemd/system/job.timer\"\ncontent = \"[Timer]\\nOnCalendar=daily\\n[Install]\\nWantedBy=timers.target\\n\"\n[[files]]\ndest = \"/usr/bin/job\"\ncontent = \"#!/bin/sh\\n\"\nmode = \"0755\"\n[services]\nenable = [\"job.timer\"]\n";
        let (spec, plan) = planned(text, crate::distro::Family::Debian);
        let inventory = Inventory::default();
        let job = "[Service]\nDynamicUser=yes\nExecStart=/usr/bin/job\n";
        let timer = "[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n";
        let masked = "[Service]\nDynamicUser=yes\nExecStart=/usr/bin/gone\n";
        let records = [
            (
                "unit",
                "job.service",
                "/etc/systemd/system/job.service",
                job,
            ),
            ("unit", "job.timer", "/etc/systemd/system/job.timer", timer),
            (
                "enabled",
                "job.timer",
                "/etc/systemd/system/job.timer",
                timer,
            ),
            // Masked by sysfile's Debian list, with its enabling link left behind.
            (
                "enabled",
                "systemd-timesyncd.service",
                "/lib/systemd/system/systemd-timesyncd.service",
                masked,
            ),
        ];
        // `/usr/bin/job` is a [[files]] destination: not reported, whatever the collector saw.
        let report = collected(
            &records,
            &[("/usr/bin/job", false), ("/usr/bin/gone", false)],
        );
        let diagnostics = check_units(&spec, &plan, &inventory, &report);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        let d = &diagnostics[0];
        // The timer starts the service: an error, at the service's [[files]] entry (line 3).
        assert!(d.is_error(), "{d:?}");
        assert_eq!(d.code, "unit-setting-fails");
        assert_eq!(&text[d.span.start..d.span.start + 9], "[[files]]");
        assert!(
            d.message
                .contains("/etc/systemd/system/job.service, line 2"),
            "{d:?}"
        );

        // A drop-in resetting the setting clears it.
        let mut records = records.to_vec();
        records.push((
            "dropin",
            "job.service",
            "/etc/systemd/system/job.service.d/container.conf",
            "[Service]\nDynamicUser=\n",
        ));
        let report = collected(&records, &[]);
        assert!(check_units(&spec, &plan, &inventory, &report).is_empty());
    }

    #[test]
    fn a_static_unit_is_not_enabled() {
        let text = "[image]\nfrom = \"debian\"\n[services]\nenable = [\"oneshot\"]\n";
        let (spec, plan) = planned(text, crate::distro::Family::Fedora);
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
