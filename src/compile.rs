//! The pure pipeline, written once: a loaded spec and the facts about its base become the LLB
//! definition (its source map inside), the verification report's definition and the image
//! config.
//!
//! `sysfile llb`, the golden tests and the gateway frontend all call [`compile`]; only the
//! frontend then solves the report and passes what it found to [`Compiled::image_config`].
//! No I/O and no clock: every input is an argument.

use serde_json::Value;

use crate::diag::{Sources, Span};
use crate::distro::Family;
use crate::image::{self, ImageInputs};
use crate::lower::{self, LowerOptions, Lowering};
use crate::model::Spec;
use crate::pb::llb as pb;
use crate::plan::{self, BaseFacts, Plan};
use crate::reference::Reference;
use crate::report::{self, Inventory};

/// A compiled build: the plan and everything lowered from it.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub plan: Plan,
    /// The image's LLB; `definition.source` is the source map (a location on every op).
    pub definition: pb::Definition,
    /// The units step's verification report (`None` only for a plan without a units step,
    /// which [`plan::plan`] never makes). It shares every op with `definition`, so BuildKit
    /// runs the build once for both.
    pub report: Option<pb::Definition>,
    /// `(created_by, empty_layer)` per build step, for the image config's history.
    pub history: Vec<(String, bool)>,
    /// The checks to solve apart (evaluated) on a daemon without merge and diff ops; empty
    /// where they are part of `definition` (see [`lower::Lowered::checks`]).
    pub checks: Vec<pb::Definition>,
    /// The leaf files no check sees, to solve (evaluated) beside verification (see
    /// [`lower::Lowered::leaves`]).
    pub leaves: Option<pb::Definition>,
}

/// Compiles `spec` (whose files are `sources`) for a base described by `facts`.
pub fn compile(
    spec: &Spec,
    sources: &Sources,
    facts: &BaseFacts,
    options: &LowerOptions,
) -> Compiled {
    let plan = plan::plan(spec, facts, options.order);
    let (image, report) = lower::lower(&plan, sources, options);
    Compiled {
        report,
        definition: image.definition,
        history: image.history,
        checks: image.checks,
        leaves: image.leaves,
        plan,
    }
}

/// What a build with no daemon to ask (`sysfile llb`, the golden tests, the fuzzers) assumes
/// about the base: `family`, else the one `[packages] manager` implies, else Debian; systemd
/// and `/sbin/init` already there.
pub fn assumed_facts(spec: &Spec, family: Option<Family>) -> BaseFacts {
    let family = family.unwrap_or_else(|| {
        spec.packages
            .manager
            .as_ref()
            .map_or(Family::Debian, |m| Family::of_manager(m.value))
    });
    BaseFacts::assumed(family)
}

/// The lowering options of a build with no daemon to ask: the base as the spec names it,
/// normalised, the main context named `context`, and the spec's `SOURCE_DATE_EPOCH`. A base
/// reference or epoch the loader let through but that cannot be used is the message.
pub fn offline_options(spec: &Spec) -> Result<LowerOptions, String> {
    let base = Reference::parse(&spec.image.from.value)?;
    Ok(LowerOptions {
        base_ref: base.normalized(),
        base_span: spec.image.from.span,
        context_name: "context".to_string(),
        epoch: spec.source_date_epoch().map_err(|d| d.message)?,
        ..LowerOptions::default()
    })
}

impl Compiled {
    /// The image config. `built` is what the units step's report found in the image (`None`
    /// when the report was not read, as in `sysfile llb`).
    pub fn image_config(
        &self,
        spec: &Spec,
        built: Option<&Inventory>,
        inputs: &ImageInputs<'_>,
    ) -> Value {
        image::image_config(spec, &self.plan, &self.history, built, inputs)
    }

    /// The definition that runs [`report::inventory_script`] alone on the filesystem before
    /// the units step, read-only, with the report directory as its output: what the frontend
    /// reads when the units step itself fails.
    pub fn inspection(&self, sources: &Sources, options: &LowerOptions) -> pb::Definition {
        let mut lowering = Lowering::new(&self.plan, sources, options);
        lowering.steps(self.plan.units_step);
        let args = plan::script_argv(
            &report::inventory_script(),
            "sysfile-inventory",
            [report::REPORT_DIR.to_string()],
        );
        let span: Span = self
            .plan
            .steps
            .get(self.plan.units_step)
            .map(|s| s.span)
            .unwrap_or_default();
        let output = lowering.inspect("[sysfile] inspect units", args, span);
        lowering.finish_at(&output).definition
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract;
    use crate::diag::SourceFile;

    fn build(text: &str, facts: Option<BaseFacts>) -> (Spec, Compiled) {
        let loaded = crate::spec::load(SourceFile::new("Sysfile", text), &Default::default());
        let spec = loaded.spec.expect("loads");
        let facts = facts.unwrap_or_else(|| assumed_facts(&spec, None));
        let options = offline_options(&spec).expect("usable");
        let compiled = compile(&spec, &loaded.sources, &facts, &options);
        (spec, compiled)
    }

    fn entrypoint(config: &Value) -> Vec<String> {
        serde_json::from_value(config["config"]["Entrypoint"].clone()).expect("an argv")
    }

    #[test]
    fn the_plan_decides_the_entrypoint_from_what_the_report_found() {
        let (spec, compiled) = build("[image]\nfrom = \"debian\"\n", None);
        let inputs = ImageInputs::default();
        let init = |path: &str| Inventory {
            init: path.to_string(),
            ..Inventory::default()
        };
        let config = |built: Option<&Inventory>| compiled.image_config(&spec, built, &inputs);
        assert_eq!(entrypoint(&config(None)), ["/sbin/init"]);
        let systemd = init("/usr/lib/systemd/systemd");
        assert_eq!(entrypoint(&config(Some(&systemd))), ["/sbin/init"]);
        // `/sbin/init` is another init system in the built image: systemd's own binary.
        let busybox = init("/bin/busybox");
        assert_eq!(
            entrypoint(&config(Some(&busybox))),
            ["/lib/systemd/systemd"]
        );
        assert_eq!(entrypoint(&config(Some(&init("")))), ["/sbin/init"]);
        // A base with systemd but no /sbin/init: the binary whatever the report says.
        let facts = BaseFacts {
            has_sbin_init: false,
            ..BaseFacts::assumed(Family::Fedora)
        };
        let (spec, compiled) = build("[image]\nfrom = \"fedora\"\n", Some(facts));
        let config = compiled.image_config(&spec, Some(&systemd), &inputs);
        assert_eq!(entrypoint(&config), ["/usr/lib/systemd/systemd"]);
    }

    #[test]
    fn the_config_carries_every_contract_label() {
        let (spec, compiled) = build("[image]\nfrom = \"debian\"\n", None);
        let built = Inventory {
            systemd_version: Some(252),
            ..Inventory::default()
        };
        let config = compiled.image_config(&spec, Some(&built), &ImageInputs::default());
        let labels = config["config"]["Labels"].as_object().expect("labels");
        for key in contract::ALL_LABELS {
            assert!(labels.contains_key(key), "{key} is not written");
        }
        assert_eq!(labels[contract::CGROUP_LABEL], "v1,v2");
        let sysfile_keys = labels.keys().filter(|k| k.starts_with("sysfile.")).count();
        assert_eq!(sysfile_keys, contract::ALL_LABELS.len(), "{labels:?}");
    }

    #[test]
    fn the_same_spec_compiles_to_the_same_bytes_and_a_report() {
        use prost::Message as _;
        let text = "[image]\nfrom = \"debian\"\n[services]\nenable = [\"ssh\"]\n";
        let (_, a) = build(text, None);
        let (_, b) = build(text, None);
        assert_eq!(a.definition.encode_to_vec(), b.definition.encode_to_vec());
        assert!(a.report.is_some(), "every plan ends with the units step");
        assert_eq!(a.history.len(), a.plan.steps.len());
    }

    /// The digest of the op the units step's report comes from.
    fn units_step(compiled: &Compiled) -> String {
        let report = compiled.report.as_ref().expect("a report");
        let terminal = report.def.last().expect("a terminal op");
        let op = <pb::Op as prost::Message>::decode(terminal.as_slice()).expect("an op");
        op.inputs[0].digest.clone()
    }

    /// The digests of the ops a definition's result depends on (its terminal op's inputs, and
    /// theirs, and so on).
    fn reachable(definition: &pb::Definition) -> std::collections::BTreeSet<String> {
        let ops: std::collections::BTreeMap<String, pb::Op> = definition
            .def
            .iter()
            .map(|bytes| {
                let op = <pb::Op as prost::Message>::decode(bytes.as_slice()).expect("an op");
                (crate::llb::digest(bytes), op)
            })
            .collect();
        let terminal = definition.def.last().expect("a terminal op");
        let mut todo = vec![crate::llb::digest(terminal)];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(digest) = todo.pop() {
            if seen.insert(digest.clone()) {
                todo.extend(ops[&digest].inputs.iter().map(|i| i.digest.clone()));
            }
        }
        seen
    }

    /// The digest of the op a check's result comes from: it changes exactly when the check
    /// would run again.
    fn check_op(definition: &pb::Definition) -> String {
        let terminal = definition.def.last().expect("a terminal op");
        let op = <pb::Op as prost::Message>::decode(terminal.as_slice()).expect("an op");
        op.inputs[0].digest.clone()
    }

    #[test]
    fn a_check_reruns_for_the_leaf_files_its_reads_lists_and_no_other() {
        let spec = |site: &str, page: &str, reads: &str| {
            format!(
                "[image]\nfrom = \"debian\"\n[[files]]\ndest = \"/etc/nginx/conf.d/site.conf\"\ncontent = \"{site}\"\n[[files]]\ndest = \"/srv/page.html\"\ncontent = \"{page}\"\n[[run]]\nsh = \"nginx -t\"\ncheck = true\n{reads}\n"
            )
        };
        for linear in [false, true] {
            let shape = if linear {
                "linear"
            } else {
                "dependency-shaped"
            };
            let compile = |text: &str| with_options(text, linear, None);
            let check = |site: &str, page: &str, reads: &str| {
                let compiled = compile(&spec(site, page, reads));
                assert_eq!(compiled.checks.len(), 1, "{shape}");
                check_op(&compiled.checks[0])
            };
            let nginx = "reads = [\"/etc/nginx\"]";
            // It lists the site: a new page does not re-run it, a new site does.
            let first = check("a", "a", nginx);
            assert_eq!(
                first,
                check("a", "b", nginx),
                "{shape}: the page is no input"
            );
            assert_ne!(
                first,
                check("b", "a", nginx),
                "{shape}: the site is an input"
            );
            // Without `reads` it sees, and re-runs for, every leaf file.
            let all = check("a", "a", "");
            assert_ne!(all, check("a", "b", ""), "{shape}");
            assert_ne!(all, check("b", "a", ""), "{shape}");
            // Listing nothing: it runs on the chain alone, with neither file.
            assert_eq!(
                check("a", "a", "reads = []"),
                check("b", "b", "reads = []"),
                "{shape}"
            );
            // The image has both files either way: `reads` shapes only what the check sees.
            let image = crate::llb::dump::render(&compile(&spec("a", "a", nginx)).definition)
                .expect("dump");
            assert!(
                image.contains("/srv/page.html") && image.contains("site.conf"),
                "{shape}: {image}"
            );
        }
    }

    fn with_options(text: &str, linear: bool, caps: Option<&[&str]>) -> Compiled {
        let loaded = crate::spec::load(SourceFile::new("Sysfile", text), &Default::default());
        let spec = loaded.spec.expect("loads");
        let options = LowerOptions {
            linear,
            llb_caps: caps.map(|c| c.iter().map(|s| s.to_string()).collect()),
            ..offline_options(&spec).expect("usable")
        };
        compile(
            &spec,
            &loaded.sources,
            &assumed_facts(&spec, None),
            &options,
        )
    }

    #[test]
    fn a_leaf_file_change_leaves_the_units_step_alone_in_both_shapes() {
        let spec = |content: &str| {
            format!(
                "[image]\nfrom = \"debian\"\n[[files]]\ndest = \"/etc/app/app.conf\"\ncontent = \"{content}\"\n[[run]]\nsh = \"nginx -t\"\ncheck = true\n"
            )
        };
        let (a, b) = (spec("a"), spec("b"));
        let joined = |text: &str| with_options(text, false, None);
        assert_eq!(units_step(&joined(&a)), units_step(&joined(&b)));
        assert_eq!(
            joined(&a).checks.len(),
            1,
            "the check is in the image, and solved beside verification"
        );
        let dump = crate::llb::dump::render(&joined(&a).definition).expect("dump");
        // One merge lays the image: the chain, the leaf's diff, the report's and the check's;
        // the other is what the check runs on.
        assert!(dump.contains("a file no later step reads"), "{dump}");
        assert_eq!(dump.matches("\n  merge ").count(), 2, "{dump}");
        assert!(dump.contains("\n  merge 0 1 2 3\n"), "{dump}");
        assert!(dump.contains("check: nginx -t"), "{dump}");
        // The history lists the leaf's layer after the chain's, as the merge lays them out.
        let history = joined(&a).history;
        assert_eq!(
            history.last().map(|h| h.0.as_str()),
            Some("[sysfile] write /etc/app/app.conf")
        );

        let old: &[&str] = &["file.base", "exec.meta.base"];
        for linear in [
            with_options(&a, true, None),
            with_options(&a, false, Some(old)),
        ] {
            assert_eq!(
                linear.checks.len(),
                1,
                "a linear build solves its check apart"
            );
            let other = &linear;
            let dump = crate::llb::dump::render(&other.definition).expect("dump");
            assert!(!dump.contains("diff lower"), "{dump}");
            assert!(!dump.contains("check: nginx -t"), "{dump}");
            let check = crate::llb::dump::render(&other.checks[0]).expect("dump");
            assert!(check.contains("check: nginx -t"), "{check}");
        }
        // The check runs on what the spec's steps make: it never waits for the units step, in
        // either shape, and it sees the leaf file.
        for compiled in [joined(&a), with_options(&a, true, None)] {
            let check = &compiled.checks[0];
            let reached = reachable(check);
            assert!(!reached.contains(&units_step(&compiled)), "{reached:?}");
            let dump = crate::llb::dump::render(check).expect("dump");
            assert!(dump.contains("/etc/app/app.conf"), "{dump}");
        }
        // In a line the leaf is applied at its end, after the units step, which it never feeds.
        assert_eq!(
            units_step(&with_options(&a, true, None)),
            units_step(&with_options(&b, true, None)),
            "in a line, the leaf file comes after the units step"
        );
        assert_eq!(
            with_options(&a, true, None)
                .history
                .last()
                .map(|h| h.0.as_str()),
            Some("[sysfile] write /etc/app/app.conf")
        );
    }
}
