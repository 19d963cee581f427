//! Verification through BuildKit: solve the units step's report, read it, and check it (unit
//! names, unit states, failed `systemctl` calls, image hygiene, the unit audit). When the units
//! step itself fails, inspect the filesystem before it to say which unit name was wrong;
//! anything else BuildKit reports passes through unchanged. The checks themselves are [`crate::verify`]'s, the report's shape
//! [`crate::report`]'s.

use super::BuildError;
use crate::compile::Compiled;
use crate::diag::{Diagnostic, Sources};
use crate::gateway::{Bridge, BridgeError};
use crate::lower::LowerOptions;
use crate::model::Spec;
use crate::pb;
use crate::report::{self, Inventory};
use crate::verify;

/// A build that passed verification: what the report found, and the warnings.
pub(super) struct Verified {
    pub inventory: Inventory,
    pub warnings: Vec<Diagnostic>,
}

/// One platform's build, as verification needs it.
pub(super) struct Verification<'a> {
    pub bridge: &'a Bridge,
    pub spec: &'a Spec,
    pub compiled: &'a Compiled,
    pub sources: &'a Sources,
    pub options: &'a LowerOptions,
    pub cache_imports: &'a [pb::gateway::CacheOptionsEntry],
}

impl Verification<'_> {
    /// Solves the build up to its units step's report and checks it.
    pub async fn run(&self) -> Result<Verified, BuildError> {
        let report = self
            .compiled
            .report
            .clone()
            .ok_or_else(|| BuildError::Other("the plan has no units step".to_string()))?;
        let files = match read_report(self.bridge, report, self.cache_imports).await {
            Ok(files) => files,
            Err(failure) => return Err(self.explain_units_failure(failure).await),
        };
        let [
            units,
            aliases,
            version,
            init,
            sshd,
            states,
            facts,
            failures,
            _,
        ] = files
            .each_ref()
            .map(|f| String::from_utf8_lossy(f).into_owned());
        let inventory = Inventory::parse(&units, &aliases, &version, &init, &sshd);
        let mut diagnostics = verify::check_inventory(self.spec, &inventory);
        let failures = report::Failure::parse_all(&failures);
        // A unit name the inventory does not know explains the failure of its systemctl call.
        if !diagnostics.iter().any(Diagnostic::is_error) {
            diagnostics.extend(verify::check_failures(self.spec, &failures));
        }
        if failures.is_empty() {
            diagnostics.extend(verify::check_state(
                self.spec,
                &self.compiled.plan,
                &states,
                &facts,
            ));
        }
        diagnostics.extend(verify::check_units(
            self.spec,
            &self.compiled.plan,
            &inventory,
            &report::Collected::parse(&files[8]),
        ));
        let (errors, warnings): (Vec<_>, Vec<_>) =
            diagnostics.into_iter().partition(Diagnostic::is_error);
        if !errors.is_empty() {
            return Err(self.spec_error(errors));
        }
        Ok(Verified {
            inventory,
            warnings,
        })
    }

    /// The units step failed: if a unit name in the spec is wrong, say which, at its line; else
    /// pass BuildKit's error on.
    async fn explain_units_failure(&self, failure: BridgeError) -> BuildError {
        let inspection = self.compiled.inspection(self.sources, self.options);
        let inspected = async {
            let reference = self
                .bridge
                .solve(inspection, self.cache_imports.to_vec(), false)
                .await?;
            let [units, aliases, version, init, sshd, ..] = report::REPORT_FILES;
            read_texts(
                self.bridge,
                &reference,
                [units, aliases, version, init, sshd],
            )
            .await
        };
        match inspected.await {
            Ok([units, aliases, version, init, sshd]) => {
                let inventory = Inventory::parse(&units, &aliases, &version, &init, &sshd);
                let errors: Vec<Diagnostic> = verify::check_inventory(self.spec, &inventory)
                    .into_iter()
                    .filter(Diagnostic::is_error)
                    .collect();
                if errors.is_empty() {
                    BuildError::Buildkit(failure)
                } else {
                    self.spec_error(errors)
                }
            }
            // The steps before the units step failed too: BuildKit's own error says where.
            Err(_) => BuildError::Buildkit(failure),
        }
    }

    fn spec_error(&self, diagnostics: Vec<Diagnostic>) -> BuildError {
        BuildError::Spec {
            diagnostics,
            sources: self.sources.clone(),
        }
    }
}

/// Solves a report definition and reads every report file (the script always writes them all).
async fn read_report(
    bridge: &Bridge,
    report: pb::llb::Definition,
    cache_imports: &[pb::gateway::CacheOptionsEntry],
) -> Result<[Vec<u8>; report::REPORT_FILES.len()], BridgeError> {
    let reference = bridge.solve(report, cache_imports.to_vec(), false).await?;
    read_files(bridge, &reference, report::REPORT_FILES).await
}

/// Reads `names` from a solved ref.
async fn read_files<const N: usize>(
    bridge: &Bridge,
    reference: &str,
    names: [&str; N],
) -> Result<[Vec<u8>; N], BridgeError> {
    // All at once: one round trip.
    let read =
        futures_util::future::try_join_all(names.map(|name| bridge.read_file(reference, name)))
            .await?;
    let mut files: [Vec<u8>; N] = std::array::from_fn(|_| Vec::new());
    for (file, data) in files.iter_mut().zip(read) {
        *file = data;
    }
    Ok(files)
}

/// Reads `names` from a solved ref, as text.
async fn read_texts<const N: usize>(
    bridge: &Bridge,
    reference: &str,
    names: [&str; N],
) -> Result<[String; N], BridgeError> {
    let files = read_files(bridge, reference, names).await?;
    Ok(files.map(|f| String::from_utf8_lossy(&f).into_owned()))
}
