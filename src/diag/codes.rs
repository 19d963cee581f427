//! The diagnostic codes: one table, so a code is spelled once and every code is documented.
//!
//! Every diagnostic outside the lint rules (which have their own table, `lint::RULES`, held to
//! `docs/lint.md`) takes its code from [`Code`]. The tests hold the table to the code table of
//! `docs/spec.md` and scan `src/` for diagnostics built with a code that is not in it.

macro_rules! codes {
    ($($variant:ident = $name:literal,)+) => {
        /// A stable identifier of a kind of problem, such as `unknown-key`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)+
        }

        impl Code {
            /// Every code, in the order of the table.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            /// The code as users see it, `unknown-key`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)+
                }
            }
        }
    };
}

codes! {
    TomlSyntax = "toml-syntax",
    UnknownKey = "unknown-key",
    WrongType = "wrong-type",
    MissingKey = "missing-key",
    ConflictingKeys = "conflicting-keys",
    BadValue = "bad-value",
    UndeclaredArg = "undeclared-arg",
    UnterminatedInterpolation = "unterminated-interpolation",
    BadInterpolation = "bad-interpolation",
    UndeclaredBuildArg = "undeclared-build-arg",
    BadArgName = "bad-arg-name",
    BadImageReference = "bad-image-reference",
    BadPlatform = "bad-platform",
    BadPackageName = "bad-package-name",
    BadId = "bad-id",
    ControlCharacter = "control-character",
    NotUtf8 = "not-utf8",
    UnreadableInclude = "unreadable-include",
    ContextFileMissing = "context-file-missing",
    ContextFileKind = "context-file-kind",
    MoreDiagnostics = "more-diagnostics",
    PathEscapesContext = "path-escapes-context",
    EmptyPath = "empty-path",
    NotAbsolute = "not-absolute",
    BadDest = "bad-dest",
    BadMode = "bad-mode",
    BadOwner = "bad-owner",
    BadUser = "bad-user",
    BadUserName = "bad-user-name",
    BadGroupName = "bad-group-name",
    BadUid = "bad-uid",
    DuplicateUser = "duplicate-user",
    DuplicateUid = "duplicate-uid",
    BadEnvName = "bad-env-name",
    ReservedEnvName = "reserved-env-name",
    EmptyArgv = "empty-argv",
    ArgvNotInterpolated = "argv-not-interpolated",
    BadMountOption = "bad-mount-option",
    MountOnRoot = "mount-on-root",
    DuplicateMountTarget = "duplicate-mount-target",
    BadDuration = "bad-duration",
    BadSize = "bad-size",
    BadPort = "bad-port",
    BadUnitName = "bad-unit-name",
    TemplateUnit = "template-unit",
    ConflictingUnitState = "conflicting-unit-state",
    DuplicateUnit = "duplicate-unit",
    BadTarget = "bad-target",
    EarlyBootTarget = "early-boot-target",
    BadContainerName = "bad-container-name",
    BadLabel = "bad-label",
    BadContextName = "bad-context-name",
    MissingInclude = "missing-include",
    IncludeCycle = "include-cycle",
    IncludeTooDeep = "include-too-deep",
    ConflictingInclude = "conflicting-include",
    UnknownLintRule = "unknown-lint-rule",
    UnknownBuildContext = "unknown-build-context",
    BadBuildContext = "bad-build-context",
    UnsupportedBuildContext = "unsupported-build-context",
    BadBaseContext = "bad-base-context",
    UnsupportedByBuilder = "unsupported-by-builder",
    TargetIgnored = "target-ignored",
    UnknownDistribution = "unknown-distribution",
    BaseNotResolved = "base-not-resolved",
    UnknownUnit = "unknown-unit",
    UnitChangeFailed = "unit-change-failed",
    UnitSettingFails = "unit-setting-fails",
    UnitDependsOnMasked = "unit-depends-on-masked",
    UnitProgramMissing = "unit-program-missing",
    UnitServiceMissing = "unit-service-missing",
    UnitState = "unit-state",
    DefaultTarget = "default-target",
    ImageHygiene = "image-hygiene",
}

impl From<Code> for &'static str {
    fn from(code: Code) -> &'static str {
        code.as_str()
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Code;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// The codes in the first column of the tables of `docs/spec.md`'s "Diagnostic codes".
    fn documented() -> BTreeSet<String> {
        let docs = include_str!("../../docs/spec.md");
        let section = docs
            .split("## Diagnostic codes")
            .nth(1)
            .expect("docs/spec.md has a Diagnostic codes section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut out = BTreeSet::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let cell = line.split('|').nth(1).unwrap_or_default();
            for code in cell.split(',') {
                out.insert(code.trim().trim_matches('`').to_string());
            }
        }
        out
    }

    #[test]
    fn every_code_is_documented_and_every_documented_code_exists() {
        let documented = documented();
        let table: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_string()).collect();
        let missing: Vec<_> = table.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "codes missing from docs/spec.md: {missing:?}"
        );
        let unknown: Vec<_> = documented.difference(&table).collect();
        assert!(
            unknown.is_empty(),
            "docs/spec.md documents codes sysfile never reports: {unknown:?}"
        );
        assert_eq!(table.len(), Code::ALL.len(), "a code is spelled twice");
    }

    /// The string literal, if any, that a call starting at `rest` (just past its `(`) takes
    /// as its first argument.
    fn literal_argument(rest: &str) -> Option<&str> {
        let rest = rest.trim_start().strip_prefix('"')?;
        let end = rest.find('"')?;
        rest[end + 1..]
            .trim_start()
            .starts_with(',')
            .then(|| &rest[..end])
    }

    /// Every diagnostic constructor in the non-test part of `text` whose code is a string
    /// literal, with the literal.
    fn literal_codes(text: &str) -> Vec<String> {
        const CALLS: &[&str] = &[
            "Diagnostic::error(",
            "Diagnostic::warning(",
            "ctx.error(",
            "ctx.warning(",
            "invalid(",
        ];
        let code = text.split("#[cfg(test)]").next().unwrap_or(text);
        let mut out = Vec::new();
        for call in CALLS {
            for (at, _) in code.match_indices(call) {
                if let Some(literal) = literal_argument(&code[at + call.len()..]) {
                    out.push(literal.to_string());
                }
            }
        }
        out
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_diagnostic_is_built_with_a_code_outside_the_table() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        let mut bad = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).expect("a source file is readable");
            let name = file
                .strip_prefix(&src)
                .unwrap_or(file)
                .display()
                .to_string();
            // Nor is a code spelled as a string anywhere else (`d.code == "…"`, an argument).
            let code_part = text.split("#[cfg(test)]").next().unwrap_or(&text);
            if name != "diag/codes.rs" {
                for code in Code::ALL {
                    if code_part.contains(&format!("\"{code}\"")) {
                        bad.push(format!("{name}: \"{code}\" spelled as a string"));
                    }
                }
            }
            for literal in literal_codes(&text) {
                bad.push(format!("{name}: \"{literal}\""));
            }
        }
        assert!(
            bad.is_empty(),
            "diagnostics built with a literal code (use diag::Code): {bad:?}"
        );
        assert!(files.len() > 20, "the scan found the sources");
    }

    #[test]
    fn the_scan_finds_literal_codes() {
        let text = "fn f() { Diagnostic::error(\n  \"made-up\", span, \"m\"); ctx.error(Code::BadMode, r); }\n#[cfg(test)]\nDiagnostic::error(\"e\", s, \"x\")";
        assert_eq!(literal_codes(text), vec!["made-up".to_string()]);
    }
}
