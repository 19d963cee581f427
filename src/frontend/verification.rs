//! Verification through BuildKit: solve the units step's report, read it, and check it (unit
//! names, unit states, image hygiene). When the units step itself fails, inspect the filesystem
//! before it to say which unit name was wrong; anything else BuildKit reports passes through
//! unchanged. The checks themselves are [`crate::verify`]'s, the report's shape
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

/// Solves the build up to its units step's report and checks it.
pub(super) async fn verify_build(
    bridge: &Bridge,
    spec: &Spec,
    compiled: &Compiled,
    sources: &Sources,
    options: &LowerOptions,
    cache_imports: &[pb::gateway::CacheOptionsEntry],
) -> Result<Verified, BuildError> {
    let report = compiled
        .report
        .clone()
        .ok_or_else(|| BuildError::Other("the plan has no units step".to_string()))?;
    let texts = match read_report(bridge, report, cache_imports).await {
        Ok(texts) => texts,
        Err(failure) => {
            return Err(explain_units_failure(
                bridge,
                spec,
                compiled,
                sources,
                options,
                cache_imports,
                failure,
            )
            .await);
        }
    };
    let [units, aliases, version, init, states, facts] = texts;
    let inventory = Inventory::parse(&units, &aliases, &version, &init);
    let mut diagnostics = verify::check_inventory(spec, &inventory);
    diagnostics.extend(verify::check_state(spec, &compiled.plan, &states, &facts));
    let (errors, warnings): (Vec<_>, Vec<_>) =
        diagnostics.into_iter().partition(Diagnostic::is_error);
    if !errors.is_empty() {
        return Err(BuildError::Spec {
            diagnostics: errors,
            sources: sources.clone(),
        });
    }
    Ok(Verified {
        inventory,
        warnings,
    })
}

/// Solves a report definition and reads every report file (the script always writes them all).
async fn read_report(
    bridge: &Bridge,
    report: pb::llb::Definition,
    cache_imports: &[pb::gateway::CacheOptionsEntry],
) -> Result<[String; 6], BridgeError> {
    let reference = bridge.solve(report, cache_imports.to_vec(), false).await?;
    read_texts(bridge, &reference, report::REPORT_FILES).await
}

/// Reads `names` from a solved ref, as text.
async fn read_texts<const N: usize>(
    bridge: &Bridge,
    reference: &str,
    names: [&str; N],
) -> Result<[String; N], BridgeError> {
    let mut texts: [String; N] = std::array::from_fn(|_| String::new());
    for (text, name) in texts.iter_mut().zip(names) {
        *text = String::from_utf8_lossy(&bridge.read_file(reference, name).await?).into_owned();
    }
    Ok(texts)
}

/// The units step failed: if a unit name in the spec is wrong, say which, at its line; else
/// pass BuildKit's error on.
async fn explain_units_failure(
    bridge: &Bridge,
    spec: &Spec,
    compiled: &Compiled,
    sources: &Sources,
    options: &LowerOptions,
    cache_imports: &[pb::gateway::CacheOptionsEntry],
    failure: BridgeError,
) -> BuildError {
    let inspection = compiled.inspection(sources, options);
    let inspected = async {
        let reference = bridge
            .solve(inspection, cache_imports.to_vec(), false)
            .await?;
        let [units, aliases, version, init, ..] = report::REPORT_FILES;
        read_texts(bridge, &reference, [units, aliases, version, init]).await
    };
    match inspected.await {
        Ok([units, aliases, version, init]) => {
            let inventory = Inventory::parse(&units, &aliases, &version, &init);
            let errors: Vec<Diagnostic> = verify::check_inventory(spec, &inventory)
                .into_iter()
                .filter(Diagnostic::is_error)
                .collect();
            if errors.is_empty() {
                BuildError::Buildkit(failure)
            } else {
                BuildError::Spec {
                    diagnostics: errors,
                    sources: sources.clone(),
                }
            }
        }
        // The steps before the units step failed too: BuildKit's own error says where.
        Err(_) => BuildError::Buildkit(failure),
    }
}
