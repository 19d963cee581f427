//! Lint rules: warnings about specs that load but are likely to misbehave, for `--call=check` and `sysfile check`.
//!
//! Pure: a function of the validated [`Spec`] and the source texts (used only
//! to narrow a warning's span to the word at fault). Every warning's code is
//! its rule's [`Rule::code`]; `docs/lint.md` documents each rule.
//!
//! The loader's own warnings (`early-boot-target`, `duplicate-unit`,
//! `undeclared-build-arg`) stay with the loader; the lint never repeats them.
//!
//! `unpinned-base-image` needs what the builder learnt resolving the base, so it is not part of
//! [`check`]: the frontend calls [`check_base`] once the base is resolved, and `sysfile check`
//! says what it cannot know ([`base_unknown`]). Every entry point honours `[lint] skip` and the
//! entries' `lint_skip`. [`explain`] gives a rule's or a diagnostic code's documentation.

use std::collections::HashSet;

use crate::diag::{Code, Diagnostic, Sources, Span};
use crate::model::{Command, Entry, Health, Network, Spanned, Spec, paths_overlap};

/// Where the documentation lives: the repository's `docs/` folder (Cargo.toml's `repository`).
pub const DOCS_URL: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/docs/");

/// One lint rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// PascalCase, like BuildKit's rule names (`ruleName` in `frontend.lint`).
    pub name: &'static str,
    /// The diagnostic code (kebab-case).
    pub code: &'static str,
    pub description: &'static str,
    pub url: &'static str,
}

macro_rules! rule {
    ($name:literal, $code:literal, $description:literal) => {
        Rule {
            name: $name,
            code: $code,
            description: $description,
            url: concat!(
                env!("CARGO_PKG_REPOSITORY"),
                "/blob/main/docs/lint.md#",
                $code
            ),
        }
    };
}

pub const SERVICE_WITHOUT_PACKAGE: Rule = rule!(
    "ServiceWithoutPackage",
    "service-without-package",
    "An enabled unit that no installed package or added unit file seems to provide"
);
pub const PRIVILEGED_ONLY: Rule = rule!(
    "PrivilegedOnly",
    "privileged-only",
    "A unit that only works in a privileged container"
);
pub const NO_CONSOLE_LOGS: Rule = rule!(
    "NoConsoleLogs",
    "no-console-logs",
    "Services' output does not reach `docker logs`"
);
pub const SECRET_IN_ENV: Rule = rule!(
    "SecretInEnv",
    "secret-in-env",
    "A secret stored in the image's environment, labels or files"
);
pub const UNPINNED_BASE_IMAGE: Rule = rule!(
    "UnpinnedBaseImage",
    "unpinned-base-image",
    "The base image is not pinned by digest"
);
pub const PACKAGE_MANAGER_IN_RUN: Rule = rule!(
    "PackageManagerInRun",
    "package-manager-in-run",
    "A run step installs packages instead of `[packages] install`"
);
pub const HEALTH_NONE: Rule = rule!("HealthNone", "health-none", "The image has no healthcheck");
pub const STOP_TIMEOUT_RANGE: Rule = rule!(
    "StopTimeoutRange",
    "stop-timeout-range",
    "A stop timeout so long that stops hang, or so short that services are killed"
);
pub const HOST_NETWORK_IN_RUN: Rule = rule!(
    "HostNetworkInRun",
    "host-network-in-run",
    "A run step uses the host network"
);
pub const CURL_PIPE_SHELL: Rule = rule!(
    "CurlPipeShell",
    "curl-pipe-shell",
    "A run step pipes a download into a shell"
);
pub const INSTALLED_AND_REMOVED: Rule = rule!(
    "InstalledAndRemoved",
    "installed-and-removed",
    "A package is both installed and removed"
);
pub const MASKED_BUT_KEPT: Rule = rule!(
    "MaskedButKept",
    "masked-but-kept",
    "A unit is masked and also kept from sysfile's mask lists"
);
pub const SECRET_BUILD_ARG: Rule = rule!(
    "SecretBuildArg",
    "secret-build-arg",
    "A build argument named like a secret"
);
pub const ARG_IN_VERBATIM_TEXT: Rule = rule!(
    "ArgInVerbatimText",
    "arg-in-verbatim-text",
    "A `${NAME}` of a declared build argument in file content, which is never interpolated"
);

pub const CHECK_READS_NO_FILE: Rule = rule!(
    "CheckReadsNoFile",
    "check-reads-no-file",
    "A check's `reads` lists a path that no `[[files]]` entry writes, holds or is inside"
);

/// Every lint rule.
pub const RULES: &[Rule] = &[
    SERVICE_WITHOUT_PACKAGE,
    PRIVILEGED_ONLY,
    NO_CONSOLE_LOGS,
    SECRET_IN_ENV,
    UNPINNED_BASE_IMAGE,
    PACKAGE_MANAGER_IN_RUN,
    HEALTH_NONE,
    STOP_TIMEOUT_RANGE,
    HOST_NETWORK_IN_RUN,
    CURL_PIPE_SHELL,
    INSTALLED_AND_REMOVED,
    MASKED_BUT_KEPT,
    SECRET_BUILD_ARG,
    ARG_IN_VERBATIM_TEXT,
    CHECK_READS_NO_FILE,
];

/// The rule with this code, if it is a lint rule.
pub fn rule(code: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code == code)
}

/// The rule with this code (`unpinned-base-image`) or name (`UnpinnedBaseImage`).
pub fn rule_named(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code == name || r.name == name)
}

/// Runs every rule that needs only the spec (all but `unpinned-base-image`, see
/// [`check_base`]), drops what `[lint] skip` and the entries' `lint_skip` silence, and warns
/// about skip names that are no rule. The warnings are sorted by (file, span start) and
/// capped like the loader's (at most 5 per line and 100 per file, see [`crate::diag::cap`]).
pub fn check(spec: &Spec, sources: &Sources) -> Vec<Diagnostic> {
    let mut lint = Lint {
        sources,
        out: Vec::new(),
    };
    lint.service_without_package(spec);
    lint.privileged_only(spec);
    lint.no_console_logs(spec);
    lint.secret_in_env(spec);
    lint.run_steps(spec);
    lint.health_none(spec);
    lint.stop_timeout(spec);
    lint.installed_and_removed(spec);
    lint.masked_but_kept(spec);
    lint.secret_build_arg(spec);
    lint.arg_in_verbatim_text(spec);
    lint.check_reads_no_file(spec);
    let mut out = silence(spec, lint.out);
    out.extend(unknown_skips(spec));
    out.sort_by_key(|d| (d.span.file, d.span.start));
    crate::diag::cap(out, sources)
}

/// What the builder learnt resolving the base image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseResolution<'a> {
    /// A registry answered with the manifest digest: pinning to it would work.
    Registry { digest: &'a str },
    /// The daemon answered from its own image store without a manifest digest (Docker's
    /// classic store does for every image it has, pulled or built locally): no pin the
    /// daemon would accept is known, so nothing is reported.
    LocalStore,
}

/// `unpinned-base-image`, once the base is resolved: a warning only when the base is not
/// pinned and the resolution gave a digest to pin it to (honouring the skips).
pub fn check_base(spec: &Spec, sources: &Sources, base: BaseResolution<'_>) -> Vec<Diagnostic> {
    let BaseResolution::Registry { digest } = base else {
        return Vec::new();
    };
    if pinned_or_scratch(&spec.image.from.value) || digest.is_empty() {
        return Vec::new();
    }
    let mut lint = Lint {
        sources,
        out: Vec::new(),
    };
    lint.unpinned_base_image(spec, digest);
    silence(spec, lint.out)
}

/// What `unpinned-base-image` cannot know without the daemon, as a note for `sysfile check`
/// (`None` when the base is pinned, `scratch`, or the rule is skipped).
pub fn base_unknown(spec: &Spec) -> Option<String> {
    let from = &spec.image.from.value;
    let skipped = spec
        .lint_skip
        .iter()
        .any(|s| rule_named(&s.value) == Some(&UNPINNED_BASE_IMAGE));
    (!pinned_or_scratch(from) && !skipped).then(|| {
        format!(
            "`{from}` is not pinned by digest; whether it can be (`{}`) is known only when the builder resolves it: `sysfile check` does not ask a registry, the build reports it",
            UNPINNED_BASE_IMAGE.code
        )
    })
}

/// Whether `unpinned-base-image` has nothing to say whatever the resolution (a digest in
/// `from`, or `scratch`): the frontend then need not resolve the base for it.
pub fn pinned_or_scratch(from: &str) -> bool {
    from.contains('@') || from == "scratch"
}

/// The lint codes named by a skip list (unknown names left out).
fn skip_codes(names: &[Spanned<String>]) -> HashSet<&'static str> {
    names
        .iter()
        .filter_map(|n| rule_named(&n.value))
        .map(|r| r.code)
        .collect()
}

/// Drops the warnings `[lint] skip` names, and those inside a `[[run]]` or `[[files]]` entry
/// whose `lint_skip` names them.
fn silence(spec: &Spec, warnings: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let everywhere = skip_codes(&spec.lint_skip);
    let entries: Vec<(Span, HashSet<&'static str>)> = spec
        .runs
        .iter()
        .map(|r| (r.span, &r.lint_skip))
        .chain(spec.files.iter().map(|f| (f.span, &f.lint_skip)))
        .filter(|(_, skip)| !skip.is_empty())
        .map(|(span, skip)| (span, skip_codes(skip)))
        .collect();
    warnings
        .into_iter()
        .filter(|w| {
            !everywhere.contains(w.code)
                && !entries.iter().any(|(span, skip)| {
                    skip.contains(w.code)
                        && span.file == w.span.file
                        && span.start <= w.span.start
                        && w.span.end <= span.end
                })
        })
        .collect()
}

/// An `unknown-lint-rule` warning for every skip name that is no lint rule, with the closest rule.
fn unknown_skips(spec: &Spec) -> Vec<Diagnostic> {
    let names = spec
        .lint_skip
        .iter()
        .chain(spec.runs.iter().flat_map(|r| &r.lint_skip))
        .chain(spec.files.iter().flat_map(|f| &f.lint_skip));
    names
        .filter(|n| rule_named(&n.value).is_none())
        .map(|n| {
            let closest = RULES
                .iter()
                .flat_map(|r| [r.code, r.name])
                .map(|c| (strsim::jaro_winkler(&n.value.to_ascii_lowercase(), &c.to_ascii_lowercase()), c))
                .filter(|(score, _)| *score >= 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, c)| c);
            let help = match closest {
                Some(c) => format!("did you mean `{c}`? (`sysfile explain RULE` describes a rule; docs/lint.md lists them all)"),
                None => "name a lint rule by its code (`unpinned-base-image`) or name (`UnpinnedBaseImage`); docs/lint.md lists them all".to_string(),
            };
            Diagnostic::warning(
                Code::UnknownLintRule,
                n.span,
                format!("`{}` is not a lint rule, so it silences nothing", n.value),
            )
            .with_label("no such rule")
            .with_help(help)
        })
        .collect()
}

/// The documentation of a lint rule (by code or name) or of a diagnostic code: the rule's
/// section of `docs/lint.md`, or the code's row of `docs/spec.md`'s code tables, with its link.
pub fn explain(name: &str) -> Option<String> {
    const LINT_DOCS: &str = include_str!("../docs/lint.md");
    const SPEC_DOCS: &str = include_str!("../docs/spec.md");
    if let Some(rule) = rule_named(name) {
        let anchor = format!("<a id=\"{}\"></a>", rule.code);
        let start = LINT_DOCS.find(&anchor)? + anchor.len();
        let rest = &LINT_DOCS[start..];
        let end = rest.find("<a id=\"").unwrap_or(rest.len());
        return Some(format!("{}\n\n{}\n", rest[..end].trim(), rule.url));
    }
    let code = Code::ALL.iter().find(|c| c.as_str() == name)?;
    let codes = SPEC_DOCS.split("## Diagnostic codes").nth(1)?;
    let row = codes.lines().find(|l| {
        l.split('|').nth(1).is_some_and(|cell| {
            cell.split(',')
                .any(|c| c.trim().trim_matches('`') == code.as_str())
        })
    })?;
    let meaning = row.split('|').nth(2)?.trim();
    Some(format!(
        "{} ({})\n\n{meaning}\n\n{DOCS_URL}spec.md#diagnostic-codes\n",
        code.as_str(),
        if meaning.starts_with("**Warning**") {
            "a warning"
        } else {
            "an error"
        }
    ))
}

struct Lint<'a> {
    sources: &'a Sources,
    out: Vec<Diagnostic>,
}

impl Lint<'_> {
    fn warn(&mut self, rule: Rule, span: Span, message: String, label: &str, help: String) {
        self.out.push(
            Diagnostic::warning(rule.code, span, message)
                .with_label(label)
                .with_help(help),
        );
    }

    /// The text of a span.
    fn text(&self, span: Span) -> &str {
        self.sources
            .try_get(span.file)
            .and_then(|f| f.text.get(span.start..span.end))
            .unwrap_or_default()
    }

    /// The first occurrence of `needle` inside `span`, or `span` itself.
    fn narrow(&self, span: Span, needle: &str) -> Span {
        match self.text(span).find(needle) {
            Some(i) => Span {
                start: span.start + i,
                end: span.start + i + needle.len(),
                ..span
            },
            None => span,
        }
    }

    fn service_without_package(&mut self, spec: &Spec) {
        const UNIT_DIRS: &[&str] = &[
            "/etc/systemd/system",
            "/usr/lib/systemd/system",
            "/lib/systemd/system",
        ];
        let unit_files: Vec<&str> = spec
            .files
            .iter()
            .filter(|f| f.writes())
            .map(|f| f.dest.as_str())
            .filter(|d| UNIT_DIRS.iter().any(|dir| d.starts_with(dir)))
            .collect();
        if spec.packages.install.is_empty() && unit_files.is_empty() {
            return;
        }
        let mut packages: Vec<&str> = spec
            .packages
            .install
            .iter()
            .map(|p| p.value.as_str())
            .collect();
        packages.sort_unstable();
        let whole_dir = unit_files.iter().any(|d| UNIT_DIRS.contains(d));
        let unit_names: std::collections::HashSet<&str> = unit_files
            .iter()
            .filter_map(|d| d.rsplit('/').next())
            .collect();
        for unit in &spec.services.enable {
            let added = whole_dir || unit_names.contains(unit.name.as_str());
            if added || provided_by_base(&unit.name) || provided(&unit.name, &packages) {
                continue;
            }
            self.warn(
                SERVICE_WITHOUT_PACKAGE,
                unit.span,
                format!(
                    "`{}` is not installed by this spec: no package in `[packages] install` or unit file in `[[files]]` seems to provide it",
                    unit.name
                ),
                "no package for this unit",
                format!(
                    "install the package that ships `{}`, add the unit file with `[[files]]`, or ignore this if the base image has it",
                    unit.name
                ),
            );
        }
    }

    fn privileged_only(&mut self, spec: &Spec) {
        let units = spec
            .services
            .enable
            .iter()
            .map(|u| (u, "enabled"))
            .chain(spec.systemd.keep.iter().map(|u| (u, "kept")));
        for (unit, how) in units {
            if let Some(why) = privileged_only(&unit.name) {
                self.warn(
                    PRIVILEGED_ONLY,
                    unit.span,
                    format!(
                        "`{}` is {how}, but it only works in a privileged container: {why}",
                        unit.name
                    ),
                    "needs --privileged",
                    format!(
                        "drop `{}` (sysfile masks it for unprivileged containers), or run the container with --privileged",
                        unit.name
                    ),
                );
            }
        }
    }

    fn no_console_logs(&mut self, spec: &Spec) {
        if spec.systemd.console_logs.value {
            return;
        }
        // At the value when set, else at the `[systemd]` table (where the key goes), else at `[image]`.
        let span = spec.systemd.console_logs.span;
        self.warn(
            NO_CONSOLE_LOGS,
            span,
            "services' output goes to the journal only, so `docker logs` will not show it".into(),
            "`console_logs` is off",
            "set `console_logs = true` under `[systemd]` to forward the journal to the console"
                .into(),
        );
    }

    fn secret_in_env(&mut self, spec: &Spec) {
        let mut found: Vec<(Span, String)> = Vec::new();
        for Entry { name, value } in &spec.config.env {
            let (name, value) = (&name.value, value);
            if looks_secret(name, &value.value) {
                found.push((
                    value.span,
                    format!("`[config] env` `{name}` looks like a secret and is stored in the image config"),
                ));
            }
        }
        for Entry { name, value } in &spec.config.labels {
            let (name, value) = (&name.value, value);
            if looks_secret(name, &value.value) {
                found.push((
                    value.span,
                    format!("`[config] labels` `{name}` looks like a secret and is stored in the image config"),
                ));
            }
        }
        for step in &spec.runs {
            for Entry { name, value } in &step.env {
                let (name, value) = (&name.value, value);
                if looks_secret(name, &value.value) {
                    found.push((
                        value.span,
                        format!("the run step's `env` `{name}` looks like a secret and is recorded in the build cache and provenance"),
                    ));
                }
            }
            if let Command::Shell(sh) = &step.command.value {
                if let Some(line) = sh.lines().find(|l| persists_secret(l)) {
                    found.push((
                        self.narrow(step.command.span, line.trim()),
                        "this script copies a build secret into a file that stays in the image"
                            .into(),
                    ));
                }
            }
        }
        for (span, message) in found {
            self.warn(
                SECRET_IN_ENV,
                span,
                message,
                "secret",
                "pass secrets with a `type = \"secret\"` mount of a `[[run]]` step and use them within that step, keeping them out of the image".into(),
            );
        }
    }

    fn secret_build_arg(&mut self, spec: &Spec) {
        for arg in spec.args.iter().filter(|a| secret_name(&a.name)) {
            let span = self.narrow(arg.span, &arg.name);
            self.warn(
                SECRET_BUILD_ARG,
                span,
                format!(
                    "build argument `{}` looks like a secret; build arguments are recorded in the build cache, provenance and image history",
                    arg.name
                ),
                "named like a secret",
                "pass secrets with `--secret` and a `type = \"secret\"` mount of the `[[run]]` step that needs them".into(),
            );
        }
    }

    fn arg_in_verbatim_text(&mut self, spec: &Spec) {
        for file in &spec.files {
            let crate::model::FileSource::Content(content) = &file.source.value else {
                continue;
            };
            let Some(arg) = spec
                .args
                .iter()
                .find(|a| content.contains(&format!("${{{}}}", a.name)))
            else {
                continue;
            };
            let reference = format!("${{{}}}", arg.name);
            let span = self.narrow(file.source.span, &reference);
            self.warn(
                ARG_IN_VERBATIM_TEXT,
                span,
                format!(
                    "`{reference}` names a build argument, but `content` is copied verbatim and is not interpolated"
                ),
                "not interpolated",
                format!(
                    "the file will contain the text `{reference}`; to use the argument's value, write the file in a `[[run]]` step (build arguments are its environment variables); if the text is meant literally, ignore this warning"
                ),
            );
        }
    }

    fn unpinned_base_image(&mut self, spec: &Spec, digest: &str) {
        let from = &spec.image.from;
        let name = from.value.rsplit('/').next().unwrap_or(&from.value);
        let (message, label) = match name.split_once(':') {
            Some((_, "latest")) | None => (
                format!("`{}` follows the moving `latest` tag", from.value),
                "latest tag",
            ),
            Some(_) => (
                format!("`{}` is not pinned by digest", from.value),
                "no digest",
            ),
        };
        self.warn(
            UNPINNED_BASE_IMAGE,
            from.span,
            message,
            label,
            format!(
                "pin the base to the digest the builder resolved, `from = \"{}@{digest}\"`, so rebuilds use the same base; or silence the rule with `[lint] skip = [\"{}\"]`",
                from.value, UNPINNED_BASE_IMAGE.code
            ),
        );
    }

    fn run_steps(&mut self, spec: &Spec) {
        for step in &spec.runs {
            let script = match &step.command.value {
                Command::Shell(sh) => sh.clone(),
                Command::Exec(argv) => argv.join(" "),
            };
            if let Some(call) = package_manager_call(&script) {
                self.warn(
                    PACKAGE_MANAGER_IN_RUN,
                    self.narrow(step.command.span, call),
                    format!("this run step calls `{call}`"),
                    "installs packages",
                    "list the packages under `[packages] install`: sysfile installs them with locked cache mounts and fails on any error".into(),
                );
            }
            if step.network.value == Network::Host {
                self.warn(
                    HOST_NETWORK_IN_RUN,
                    step.network.span,
                    "this run step uses the host network".into(),
                    "host network",
                    "drop `network = \"host\"`: the step then depends on the build host, and builders may refuse it (network.host entitlement)".into(),
                );
            }
            if let Some(fetch) = pipe_to_shell(&script) {
                self.warn(
                    CURL_PIPE_SHELL,
                    self.narrow(step.command.span, fetch),
                    "this run step pipes a download into a shell".into(),
                    "download piped into a shell",
                    "download to a file, check its checksum (`sha256sum -c`), then run it; or install a package".into(),
                );
            }
        }
    }

    fn health_none(&mut self, spec: &Spec) {
        if spec.systemd.health.value != Health::None {
            return;
        }
        let span = spec.systemd.health.span;
        self.warn(
            HEALTH_NONE,
            span,
            "the image has no healthcheck".into(),
            "no healthcheck",
            "use `health = \"running\"` (the default) or \"running-or-degraded\", so the engine reports when boot fails".into(),
        );
    }

    fn stop_timeout(&mut self, spec: &Spec) {
        let timeout = spec.systemd.stop_timeout.value;
        let message = if timeout.as_secs() > 90 {
            format!(
                "`stop_timeout` is {}s: a hung service delays every stop that long, and engines kill the container sooner",
                timeout.as_secs()
            )
        } else if timeout.as_secs() < 1 {
            format!(
                "`stop_timeout` is {}ms: services are killed before they can stop cleanly",
                timeout.as_millis()
            )
        } else {
            return;
        };
        let span = spec.systemd.stop_timeout.span;
        self.warn(
            STOP_TIMEOUT_RANGE,
            span,
            message,
            "stop timeout",
            "use a stop timeout from 1s to 90s, such as \"20s\" (the default)".into(),
        );
    }

    fn installed_and_removed(&mut self, spec: &Spec) {
        let installed: std::collections::HashSet<&str> = spec
            .packages
            .install
            .iter()
            .map(|p| p.value.as_str())
            .collect();
        for removed in &spec.packages.remove {
            if installed.contains(removed.value.as_str()) {
                self.warn(
                    INSTALLED_AND_REMOVED,
                    removed.span,
                    format!("`{}` is both installed and removed", removed.value),
                    "also in `install`",
                    format!(
                        "keep `{}` in `install` or in `remove`, not both",
                        removed.value
                    ),
                );
            }
        }
    }

    /// A check's `reads` only chooses which leaf files it sees, so a path that overlaps no
    /// `[[files]]` entry (a typo, a file since moved) hides from it files it may need: it then
    /// passes or fails on a filesystem the image does not have.
    fn check_reads_no_file(&mut self, spec: &Spec) {
        for run in spec.runs.iter().filter(|r| r.check) {
            for path in run.reads.iter().flatten() {
                if spec.files.iter().any(|f| paths_overlap(&f.dest, path)) {
                    continue;
                }
                let span = self.narrow(run.span, &format!("\"{path}"));
                self.warn(
                    CHECK_READS_NO_FILE,
                    span,
                    format!("`{path}` in this check's `reads` matches no `[[files]]` entry"),
                    "matches no file",
                    "fix the path, or remove it: the check sees only the added files its `reads` lists"
                        .to_string(),
                );
            }
        }
    }

    fn masked_but_kept(&mut self, spec: &Spec) {
        let masked: std::collections::HashSet<&str> =
            spec.services.mask.iter().map(|m| m.name.as_str()).collect();
        for kept in &spec.systemd.keep {
            if masked.contains(kept.name.as_str()) {
                self.warn(
                    MASKED_BUT_KEPT,
                    kept.span,
                    format!(
                        "`{}` is kept from the mask lists but masked by `[services] mask`",
                        kept.name
                    ),
                    "also masked",
                    format!(
                        "remove `{}` from `[services] mask` or from `[systemd] keep`",
                        kept.name
                    ),
                );
            }
        }
    }
}

/// The unit's name without suffix and instance: `getty@tty1.service` is `getty`.
fn stem(unit: &str) -> &str {
    let base = unit.rsplit_once('.').map_or(unit, |(b, _)| b);
    base.split('@').next().unwrap_or(base)
}

/// Units that come with systemd itself or any base system.
fn provided_by_base(unit: &str) -> bool {
    let stem = stem(unit);
    stem.starts_with("systemd-")
        || unit.ends_with(".target")
        || unit.ends_with(".mount")
        || unit.ends_with(".slice")
        || matches!(
            stem,
            "getty"
                | "serial-getty"
                | "console-getty"
                | "dbus"
                | "tmp"
                | "user"
                | "container-getty"
        )
}

/// Whether some installed package (`packages`, sorted) seems to ship the unit.
fn provided(unit: &str, packages: &[&str]) -> bool {
    let stem = stem(unit);
    let known: &[(&str, &[&str])] = &[
        ("ssh", &["openssh-server", "openssh"]),
        ("sshd", &["openssh-server", "openssh"]),
        ("postgresql", &["postgresql"]),
        ("apache2", &["apache2"]),
        ("httpd", &["httpd", "apache2"]),
        ("nginx", &["nginx"]),
        ("cron", &["cron", "cronie"]),
        ("crond", &["cronie", "cron"]),
        ("mysql", &["mysql-server", "mariadb-server"]),
        ("mariadb", &["mariadb-server", "mariadb"]),
        ("docker", &["docker.io", "docker-ce", "docker"]),
        ("containerd", &["containerd", "containerd.io"]),
        ("redis", &["redis-server", "redis"]),
        ("redis-server", &["redis-server", "redis"]),
        ("rsyslog", &["rsyslog"]),
        ("chronyd", &["chrony"]),
        ("chrony", &["chrony"]),
        ("NetworkManager", &["network-manager", "NetworkManager"]),
    ];
    let pairs = known
        .iter()
        .find(|(s, _)| *s == stem)
        .map_or(&[][..], |(_, p)| *p);
    // `packages` is sorted: a package starting with `prefix` is the first one not below it.
    let any_starts_with = |prefix: &str| {
        let i = packages.partition_point(|p| *p < prefix);
        packages.get(i).is_some_and(|p| p.starts_with(prefix))
    };
    let stem_starts_with_a_package = stem
        .char_indices()
        .map(|(i, c)| &stem[..i + c.len_utf8()])
        .any(|prefix| packages.binary_search(&prefix).is_ok());
    any_starts_with(stem)
        || stem_starts_with_a_package
        || pairs.iter().any(|pair| any_starts_with(pair))
}

/// Why a unit needs a privileged container, if it does.
fn privileged_only(unit: &str) -> Option<&'static str> {
    match stem(unit) {
        "systemd-udevd" | "systemd-udev-trigger" | "systemd-udev-settle" => {
            Some("udev needs a writable /sys and the kernel's device events")
        }
        "systemd-modules-load" => Some("loading kernel modules needs CAP_SYS_MODULE"),
        "systemd-sysctl" => Some("most sysctls are read-only in a container"),
        "systemd-binfmt" => Some("binfmt_misc is the host's, shared by every container"),
        "getty" | "console-getty" | "serial-getty" | "container-getty" => {
            Some("a getty needs a terminal device the container does not have")
        }
        "systemd-timesyncd" => Some("setting the clock needs CAP_SYS_TIME"),
        "systemd-remount-fs" => Some("remounting the root filesystem needs CAP_SYS_ADMIN"),
        _ => None,
    }
}

/// Whether a name reads like a secret's: `DB_PASSWORD`, `API_TOKEN`, `github.secret`, …
fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase().replace(['.', '-'], "_");
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
    ]
    .iter()
    .any(|k| upper.contains(k))
}

/// Whether an environment entry or label looks like a secret.
fn looks_secret(name: &str, value: &str) -> bool {
    if value.trim().is_empty() {
        return false;
    }
    let key = secret_name(name);
    let shape = value.contains("-----BEGIN")
        || ["ghp_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "AKIA"]
            .iter()
            .any(|p| value.starts_with(p));
    key || shape
}

/// A script line that writes something read from `/run/secrets/` into a file outside `/run`, `/tmp` and `/dev`.
fn persists_secret(line: &str) -> bool {
    if !line.contains("/run/secrets/") {
        return false;
    }
    let targets = line
        .match_indices('>')
        .map(|(i, _)| line[i + 1..].trim_start_matches('>').trim_start())
        .chain(
            line.match_indices("tee ")
                .map(|(i, _)| line[i + 4..].trim_start_matches("-a ").trim_start()),
        );
    targets
        .map(|t| t.trim_start_matches(['"', '\'']))
        .filter(|t| t.starts_with('/'))
        .any(|t| {
            !["/run/", "/tmp/", "/dev/"]
                .iter()
                .any(|ok| t.starts_with(ok))
        })
}

/// The package-manager install command a script calls, if any.
fn package_manager_call(script: &str) -> Option<&'static str> {
    const CALLS: &[&str] = &[
        "apt-get install",
        "apt install",
        "aptitude install",
        "dnf install",
        "yum install",
        "microdnf install",
        "zypper install",
        "zypper in ",
        "pacman -S",
        "apk add",
    ];
    let squeezed = script.split_whitespace().collect::<Vec<_>>().join(" ");
    CALLS
        .iter()
        .find(|call| {
            squeezed.match_indices(*call).any(|(i, _)| {
                squeezed[..i]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '-'))
            })
        })
        .map(|call| call.trim_end())
}

/// The download command of a `curl … | sh`-like pipe, if any.
fn pipe_to_shell(script: &str) -> Option<&'static str> {
    for line in script.lines() {
        let Some((left, right)) = line.split_once('|') else {
            continue;
        };
        let fetch = ["curl", "wget"].into_iter().find(|f| left.contains(f));
        let right = right.trim_start_matches('|').trim_start();
        let right = right.strip_prefix("sudo ").unwrap_or(right);
        let shell = [
            "sh",
            "bash",
            "/bin/sh",
            "/bin/bash",
            "zsh",
            "python",
            "python3",
        ]
        .iter()
        .any(|s| right == *s || right.starts_with(&format!("{s} ")));
        if let (Some(fetch), true) = (fetch, shell) {
            return Some(fetch);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SourceFile;
    use crate::spec::{LoadOptions, load};

    const BASE: &str = "[image]\nfrom = \"debian:bookworm@sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n[systemd]\nconsole_logs = true\n";

    /// The lint codes for `BASE` followed by `extra`.
    fn codes(extra: &str) -> Vec<&'static str> {
        let text = format!("{BASE}{extra}");
        let loaded = load(SourceFile::new("Sysfile", text), &LoadOptions::default());
        assert!(
            !loaded.diagnostics.iter().any(Diagnostic::is_error),
            "{:?}",
            loaded.diagnostics
        );
        let spec = loaded.spec.unwrap();
        let warnings = check(&spec, &loaded.sources);
        for w in &warnings {
            assert!(w.help.is_some() && !w.message.ends_with('.'));
            assert!(rule(w.code).is_some() || w.code == Code::UnknownLintRule.as_str());
            assert!(w.span.end <= loaded.sources.get(w.span.file).text.len());
        }
        warnings.iter().map(|w| w.code).collect()
    }

    fn fires(rule: Rule, extra: &str) -> bool {
        codes(extra).contains(&rule.code)
    }

    #[test]
    fn secret_build_arg() {
        let r = SECRET_BUILD_ARG;
        assert!(fires(r, "[args]\nAPI_TOKEN = \"\"\n"));
        assert!(fires(r, "[args]\nDB_PASSWORD = \"x\"\n"));
        assert!(fires(r, "[args]\nclient_secret = \"\"\n"));
        assert!(!fires(r, "[args]\nVERSION = \"1\"\n"));
    }

    #[test]
    fn arg_in_verbatim_text() {
        let r = ARG_IN_VERBATIM_TEXT;
        let file = |content: &str| {
            format!(
                "[args]\nVERSION = \"1\"\n[[files]]\ndest = \"/etc/v\"\ncontent = \"{content}\"\n"
            )
        };
        assert!(fires(r, &file("v=${VERSION}")));
        assert!(!fires(r, &file("v=${OTHER}")));
        assert!(!fires(r, &file("v=$VERSION")));
    }

    #[test]
    fn clean_spec_has_no_warnings() {
        assert_eq!(codes(""), Vec::<&str>::new());
    }

    #[test]
    fn service_without_package() {
        let r = SERVICE_WITHOUT_PACKAGE;
        assert!(fires(
            r,
            "[packages]\ninstall = [\"curl\"]\n[services]\nenable = [\"nginx\"]\n"
        ));
        assert!(!fires(
            r,
            "[packages]\ninstall = [\"openssh-server\"]\n[services]\nenable = [\"ssh\", \"sshd\", \"systemd-networkd\"]\n"
        ));
        assert!(!fires(
            r,
            "[packages]\ninstall = [\"postgresql-15\"]\n[services]\nenable = [\"postgresql@15-main\"]\n"
        ));
        // Units from the base image: nothing installed, nothing said.
        assert!(!fires(r, "[services]\nenable = [\"nginx\"]\n"));
        assert!(!fires(
            r,
            "[[files]]\ncontent = \"[Service]\"\ndest = \"/etc/systemd/system/app.service\"\n[services]\nenable = [\"app\"]\n"
        ));
    }

    #[test]
    fn privileged_only() {
        let r = PRIVILEGED_ONLY;
        assert!(fires(r, "[services]\nenable = [\"systemd-udevd\"]\n"));
        assert!(fires(r, "keep = [\"console-getty\"]\n"));
        assert!(!fires(r, "[services]\nenable = [\"systemd-networkd\"]\n"));
    }

    #[test]
    fn no_console_logs() {
        let text = "[image]\nfrom = \"debian@sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n";
        let loaded = load(SourceFile::new("Sysfile", text), &LoadOptions::default());
        let warnings = check(loaded.spec.as_ref().unwrap(), &loaded.sources);
        let at = |warnings: &[Diagnostic], text: &str| {
            let w = warnings
                .iter()
                .find(|w| w.code == NO_CONSOLE_LOGS.code)
                .expect("the rule fires");
            text[w.span.start..]
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        // Without a `[systemd]` table, at `[image]`; with one, at `[systemd]`.
        assert_eq!(at(&warnings, text), "[image]");
        let with_table = format!("{text}[systemd]\nhealth = \"running\"\n");
        let (spec, sources) = load_spec(&with_table);
        assert_eq!(at(&check(&spec, &sources), &with_table), "[systemd]");
        assert!(!fires(NO_CONSOLE_LOGS, ""));
    }

    #[test]
    fn secret_in_env() {
        let r = SECRET_IN_ENV;
        assert!(fires(r, "[config]\nenv = { DB_PASSWORD = \"hunter2\" }\n"));
        assert!(fires(
            r,
            "[config]\nlabels = { key = \"-----BEGIN PRIVATE KEY-----\" }\n"
        ));
        assert!(fires(
            r,
            "[[run]]\nsh = \"true\"\nenv = { GITHUB_TOKEN = \"ghp_x\" }\n"
        ));
        assert!(fires(
            r,
            "[[run]]\nsh = \"cat /run/secrets/token > /etc/app/token\"\nmounts = [{ type = \"secret\", id = \"token\" }]\n"
        ));
        assert!(!fires(
            r,
            "[[run]]\nsh = \"cat /run/secrets/token > /tmp/t && use /tmp/t\"\n"
        ));
        assert!(!fires(
            r,
            "[config]\nenv = { LANG = \"C.UTF-8\", TOKEN_FILE_EMPTY = \"\" }\n"
        ));
    }

    fn load_spec(text: &str) -> (Spec, Sources) {
        let loaded = load(SourceFile::new("Sysfile", text), &LoadOptions::default());
        (loaded.spec.expect("a valid spec"), loaded.sources)
    }

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn unpinned_base_image_needs_a_digest_to_pin_to() {
        let text = "[image]\nfrom = \"debian:bookworm\"\n[systemd]\nconsole_logs = true\n";
        let (spec, sources) = load_spec(text);
        // The spec alone cannot tell: `check` never reports it, `sysfile check` says so.
        assert!(check(&spec, &sources).is_empty());
        assert!(base_unknown(&spec).is_some_and(|n| n.contains("debian:bookworm")));
        let registry = BaseResolution::Registry { digest: DIGEST };
        let warnings = check_base(&spec, &sources, registry);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].code, UNPINNED_BASE_IMAGE.code);
        assert_eq!(
            &text[warnings[0].span.start..warnings[0].span.end],
            "\"debian:bookworm\""
        );
        let help = warnings[0].help.as_deref().unwrap_or_default();
        assert!(
            help.contains(&format!("debian:bookworm@{DIGEST}")),
            "{help}"
        );
        // Docker's own store answered, without a digest: no pin is known to work.
        assert!(check_base(&spec, &sources, BaseResolution::LocalStore).is_empty());

        let (latest, sources) = load_spec("[image]\nfrom = \"registry:5000/debian\"\n");
        let warnings = check_base(&latest, &sources, registry);
        assert!(warnings.iter().any(|w| w.message.contains("latest")));

        let (pinned, sources) = load_spec(BASE);
        assert!(check_base(&pinned, &sources, registry).is_empty());
        assert!(base_unknown(&pinned).is_none());
    }

    #[test]
    fn lint_skip_silences_a_rule_everywhere_by_code_or_name() {
        let text = "[image]\nfrom = \"debian:bookworm\"\n[lint]\nskip = [\"UnpinnedBaseImage\", \"no-console-logs\"]\n";
        let (spec, sources) = load_spec(text);
        assert!(check(&spec, &sources).is_empty());
        let registry = BaseResolution::Registry { digest: DIGEST };
        assert!(check_base(&spec, &sources, registry).is_empty());
        assert!(base_unknown(&spec).is_none());
    }

    #[test]
    fn lint_skip_on_an_entry_silences_only_that_entry() {
        let run = |skip: &str| {
            format!(
                "[[run]]\nsh = \"curl https://x | sh\"\n{skip}\n[[run]]\nsh = \"wget -O- https://y | bash\"\n"
            )
        };
        assert_eq!(
            codes(&run("")),
            vec![CURL_PIPE_SHELL.code, CURL_PIPE_SHELL.code]
        );
        assert_eq!(
            codes(&run("lint_skip = [\"curl-pipe-shell\"]")),
            vec![CURL_PIPE_SHELL.code]
        );
        assert_eq!(
            codes(&run("lint_skip = [\"CurlPipeShell\"]")),
            vec![CURL_PIPE_SHELL.code]
        );
        let file = |skip: &str| {
            format!(
                "[args]\nV = \"1\"\n[[files]]\ndest = \"/etc/v\"\ncontent = \"${{V}}\"\n{skip}\n"
            )
        };
        assert_eq!(codes(&file("")), vec![ARG_IN_VERBATIM_TEXT.code]);
        assert!(codes(&file("lint_skip = [\"arg-in-verbatim-text\"]")).is_empty());
        // A rule the entry does not name is still reported.
        assert_eq!(
            codes(&file("lint_skip = [\"curl-pipe-shell\"]")),
            vec![ARG_IN_VERBATIM_TEXT.code]
        );
    }

    #[test]
    fn an_unknown_skip_name_is_a_warning_with_the_closest_rule() {
        let text = format!("{BASE}[lint]\nskip = [\"unpined-base-image\", \"zzz\"]\n");
        let (spec, sources) = load_spec(&text);
        let warnings = check(&spec, &sources);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|w| w.code == Code::UnknownLintRule.as_str())
        );
        assert_eq!(
            &text[warnings[0].span.start..warnings[0].span.end],
            "\"unpined-base-image\""
        );
        assert!(
            warnings[0]
                .help
                .as_deref()
                .is_some_and(|h| h.contains("did you mean `unpinned-base-image`")),
            "{:?}",
            warnings[0].help
        );
        assert!(
            !warnings[1]
                .help
                .as_deref()
                .unwrap_or_default()
                .contains("did you mean")
        );
    }

    #[test]
    fn explain_prints_a_rules_page_or_a_codes_row() {
        let page = explain("UnpinnedBaseImage").expect("a rule");
        assert_eq!(explain("unpinned-base-image"), Some(page.clone()));
        assert!(
            page.starts_with("## UnpinnedBaseImage (`unpinned-base-image`)"),
            "{page}"
        );
        assert!(page.contains("**Fix.**"));
        assert!(!page.contains("## NoConsoleLogs") && !page.contains("<a id="));
        assert!(page.trim_end().ends_with(UNPINNED_BASE_IMAGE.url));
        for rule in RULES {
            assert!(explain(rule.code).is_some(), "{}", rule.code);
        }
        for code in Code::ALL {
            let text = explain(code.as_str()).unwrap_or_else(|| panic!("{code}"));
            assert!(text.starts_with(code.as_str()), "{text}");
            assert!(text.contains("spec.md#diagnostic-codes"), "{text}");
        }
        assert!(explain("bad-duration").is_some_and(|t| t.contains("duration")));
        assert_eq!(explain("no-such-thing"), None);
    }

    #[test]
    fn help_links_are_absolute() {
        assert!(DOCS_URL.starts_with("https://"), "{DOCS_URL}");
        for rule in RULES {
            assert!(rule.url.starts_with(DOCS_URL), "{}", rule.url);
        }
        assert_eq!(
            DOCS_URL,
            concat!(env!("CARGO_PKG_HOMEPAGE"), "/blob/main/docs/"),
            "Cargo.toml's repository and homepage agree"
        );
    }

    #[test]
    fn package_manager_in_run() {
        let r = PACKAGE_MANAGER_IN_RUN;
        assert!(fires(
            r,
            "[[run]]\nsh = \"apt-get update && apt-get  install -y curl\"\n"
        ));
        assert!(fires(
            r,
            "[[run]]\nargv = [\"dnf\", \"install\", \"-y\", \"vim\"]\n"
        ));
        assert!(!fires(
            r,
            "[[run]]\nsh = \"apt-get update && make install\"\n"
        ));
    }

    #[test]
    fn health_none() {
        assert!(fires(HEALTH_NONE, "health = \"none\"\n"));
        assert!(!fires(HEALTH_NONE, "health = \"running-or-degraded\"\n"));
    }

    /// Warnings point at the value that set them, never at another key of the same name
    /// earlier in the file (lint used to search the text for `key =`).
    #[test]
    fn warnings_point_at_the_value_not_at_a_key_of_the_same_name() {
        let text = "[image]\nfrom = \"debian@sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n\
            [config]\nlabels = { health = \"none\", stop_timeout = \"5m\" }\n\
            env = { console_logs = \"no\" }\n\
            [systemd]\nconsole_logs = false\nhealth = \"none\"\nstop_timeout = \"5m\"\n";
        let loaded = load(SourceFile::new("Sysfile", text), &LoadOptions::default());
        let spec = loaded.spec.expect("the spec loads");
        let warnings = check(&spec, &loaded.sources);
        let at = |rule: Rule| {
            let w = warnings
                .iter()
                .find(|w| w.code == rule.code)
                .expect("the rule fires");
            let line = loaded.sources.main().line_col(w.span.start).line;
            (line, &text[w.span.start..w.span.end])
        };
        assert_eq!(at(NO_CONSOLE_LOGS), (7, "false"));
        assert_eq!(at(HEALTH_NONE), (8, "\"none\""));
        assert_eq!(at(STOP_TIMEOUT_RANGE), (9, "\"5m\""));
    }

    #[test]
    fn stop_timeout_range() {
        assert!(fires(STOP_TIMEOUT_RANGE, "stop_timeout = \"5m\"\n"));
        assert!(fires(STOP_TIMEOUT_RANGE, "stop_timeout = \"500ms\"\n"));
        assert!(!fires(STOP_TIMEOUT_RANGE, "stop_timeout = \"90s\"\n"));
    }

    #[test]
    fn host_network_in_run() {
        assert!(fires(
            HOST_NETWORK_IN_RUN,
            "[[run]]\nsh = \"true\"\nnetwork = \"host\"\n"
        ));
        assert!(!fires(
            HOST_NETWORK_IN_RUN,
            "[[run]]\nsh = \"true\"\nnetwork = \"none\"\n"
        ));
    }

    #[test]
    fn curl_pipe_shell() {
        let r = CURL_PIPE_SHELL;
        assert!(fires(
            r,
            "[[run]]\nsh = \"curl -fsSL https://example.com/install.sh | sh\"\n"
        ));
        assert!(fires(
            r,
            "[[run]]\nsh = \"wget -qO- https://x | sudo bash -s\"\n"
        ));
        assert!(!fires(
            r,
            "[[run]]\nsh = \"curl -fsSLo /tmp/i.sh https://x && sha256sum -c sums\"\n"
        ));
        assert!(!fires(r, "[[run]]\nsh = \"curl https://x | tar -x\"\n"));
    }

    #[test]
    fn installed_and_removed() {
        let r = INSTALLED_AND_REMOVED;
        assert!(fires(
            r,
            "[packages]\ninstall = [\"vim\"]\nremove = [\"vim\"]\n"
        ));
        assert!(!fires(
            r,
            "[packages]\ninstall = [\"vim\"]\nremove = [\"nano\"]\n"
        ));
    }

    #[test]
    fn check_reads_no_file() {
        let r = CHECK_READS_NO_FILE;
        let spec = |reads: &str, check: bool| {
            format!(
                "[[files]]\ndest = \"/etc/nginx/conf.d/site.conf\"\ncontent = \"x\"\n[[run]]\nsh = \"nginx -t\"\ncheck = {check}\nreads = {reads}\n"
            )
        };
        assert!(fires(r, &spec("[\"/etc/ngnix\"]", true)), "a typo");
        assert!(fires(r, &spec("[\"/etc/nginx\", \"/srv/www\"]", true)));
        assert!(!fires(r, &spec("[\"/etc/nginx\"]", true)), "holds the file");
        assert!(!fires(r, &spec("[\"/etc/nginx/conf.d/site.conf\"]", true)));
        assert!(!fires(r, &spec("[\"/\"]", true)));
        assert!(!fires(r, &spec("[]", true)), "reads none of the files");
        // A run's `reads` may name what it changes, which no file need write.
        assert!(!fires(r, &spec("[\"/etc/ngnix\"]", false)));
        // Located at the path as written.
        let text = format!("{BASE}{}", spec("[\"/etc/ngnix\"]", true));
        let loaded = load(
            SourceFile::new("Sysfile", text.clone()),
            &LoadOptions::default(),
        );
        let warnings = check(&loaded.spec.unwrap(), &loaded.sources);
        let w = warnings.iter().find(|w| w.code == r.code).expect("fires");
        assert_eq!(&text[w.span.start..w.span.end], "\"/etc/ngnix");
    }

    #[test]
    fn masked_but_kept() {
        let r = MASKED_BUT_KEPT;
        assert!(fires(
            r,
            "keep = [\"systemd-logind\"]\n[services]\nmask = [\"systemd-logind\"]\n"
        ));
        assert!(!fires(r, "keep = [\"systemd-logind\"]\n"));
    }

    #[test]
    fn every_rule_is_documented() {
        let docs = include_str!("../docs/lint.md");
        for r in RULES {
            assert!(
                docs.contains(&format!("<a id=\"{}\"></a>", r.code)),
                "{}",
                r.code
            );
            assert!(
                docs.contains(&format!("## {} (`{}`)", r.name, r.code)),
                "{}",
                r.name
            );
            assert!(
                docs.contains(&format!(
                    "| `{}` | `{}` | {} |",
                    r.name, r.code, r.description
                )),
                "{}",
                r.name
            );
        }
    }

    #[test]
    fn rules_are_consistent() {
        assert!(RULES.len() >= 10);
        for r in RULES {
            assert!(r.name.chars().next().unwrap().is_ascii_uppercase());
            assert!(r.code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
            assert!(r.url.ends_with(r.code));
            assert!(!r.description.ends_with('.'));
        }
    }
}
