//! Build-time verification: the pure checks that turn a units-step report into located diagnostics.
//!
//! The report itself (directory, scripts, files, parse) is [`crate::report`]'s; this module
//! compares what it found with the spec and the plan: unit names that do not exist or are
//! aliases (with the nearest name), unit states that did not take (`static` units), the default
//! target and image hygiene.

use std::collections::BTreeMap;

use crate::diag::{Code, Diagnostic, Span};
use crate::model::{Spec, Unit};
use crate::plan::Plan;
use crate::report::{Inventory, Lookup};

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
