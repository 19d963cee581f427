//! Named build contexts (`--build-context NAME=…`): which ones the spec uses, and what each
//! value means (a local directory, `docker-image://`, `oci-layout://STORE@sha256:…`, a git URL,
//! an HTTP(S) file).
//!
//! Pure: a context the spec cannot use is a located diagnostic at the entry that uses it.

use std::collections::{BTreeMap, BTreeSet};

use super::caps::Caps;
use super::options::FrontendOptions;
use crate::diag::{Code, Diagnostic, Span};
use crate::lower::{NamedContext, OciStore};
use crate::model::{BindFrom, MountKind, Spec};
use crate::reference::Reference;

/// The `context:NAME=VALUE` options (`--build-context NAME=…`) as given, by name.
///
/// Nothing is interpreted here: BuildKit passes every named context of the request, including
/// ones the spec never uses (such as the `oci-layout://` store it loaded this frontend from), and
/// like the Dockerfile frontend sysfile ignores those. [`named_contexts`] interprets the ones
/// the spec uses.
pub fn context_options(options: &FrontendOptions) -> BTreeMap<String, String> {
    let mut contexts = BTreeMap::new();
    for (key, value) in options.all() {
        let Some(name) = key.strip_prefix("context:") else {
            continue;
        };
        // `context:NAME::PLATFORM` applies to one platform; sysfile treats it like `context:NAME`.
        let name = name.split("::").next().unwrap_or(name).to_string();
        contexts.insert(name, value.clone());
    }
    contexts
}

/// What a spec entry uses a named build context for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContextUse {
    /// `[image] from` names it: it replaces the base image.
    Base,
    /// `[[files]] from`.
    Files,
    /// A bind mount's `from`.
    Bind,
}

/// The named build contexts the spec uses (base `from`, `[[files]] from`, bind mount `from`),
/// interpreted; a context it cannot read is a located error at the entry that uses it.
pub fn named_contexts(
    spec: &Spec,
    given: &BTreeMap<String, String>,
    options: &FrontendOptions,
    caps: &Caps,
) -> Result<BTreeMap<String, NamedContext>, Vec<Diagnostic>> {
    let mut uses: Vec<(&str, Span, ContextUse)> = Vec::new();
    if given.contains_key(&spec.image.from.value) {
        uses.push((
            &spec.image.from.value,
            spec.image.from.span,
            ContextUse::Base,
        ));
    }
    for file in &spec.files {
        if let Some(name) = &file.from {
            uses.push((name, file.span, ContextUse::Files));
        }
    }
    for mount in spec.runs.iter().flat_map(|r| &r.mounts) {
        // A bind mount's `from` is a named context when one has that name, else an image.
        if let MountKind::Bind {
            from: BindFrom::Image(name),
            ..
        } = &mount.kind
        {
            if given.contains_key(name) {
                uses.push((name, mount.span, ContextUse::Bind));
            }
        }
    }
    let mut contexts = BTreeMap::new();
    let mut failed = BTreeSet::new();
    let mut diagnostics = Vec::new();
    for (name, span, used) in uses {
        if failed.contains(name) {
            continue;
        }
        let Some(value) = given.get(name) else {
            diagnostics.push(
                Diagnostic::error(
                    Code::UnknownBuildContext,
                    span,
                    format!("there is no build context named `{name}`"),
                )
                .with_help(format!(
                    "pass it with `docker buildx build --build-context {name}=<directory or docker-image://REF>`"
                )),
            );
            failed.insert(name);
            continue;
        };
        let context = match contexts.get(name) {
            Some(context) => context,
            None => match interpret_context(name, value, options, caps) {
                Ok(context) => contexts.entry(name.to_string()).or_insert(context),
                Err((code, message, help)) => {
                    diagnostics.push(Diagnostic::error(code, span, message).with_help(help));
                    failed.insert(name);
                    continue;
                }
            },
        };
        let is_image = matches!(
            context,
            NamedContext::Image(_) | NamedContext::OciLayout { .. }
        );
        if used == ContextUse::Base && !is_image {
            diagnostics.push(
                Diagnostic::error(
                    Code::BadBaseContext,
                    span,
                    format!("the build context `{name}` replaces the base image, but it is not an image"),
                )
                .with_help("pass it as `--build-context NAME=docker-image://REF` or `NAME=oci-layout://STORE@sha256:…`"),
            );
            failed.insert(name);
        }
    }
    if diagnostics.is_empty() {
        Ok(contexts)
    } else {
        Err(diagnostics)
    }
}

/// Reads one named context's value; on failure, a diagnostic code, message and help.
fn interpret_context(
    name: &str,
    value: &str,
    options: &FrontendOptions,
    caps: &Caps,
) -> Result<NamedContext, (Code, String, String)> {
    if let Some(reference) = value.strip_prefix("docker-image://") {
        let parsed = Reference::parse(reference).map_err(|e| {
            (
                Code::BadBuildContext,
                format!("the build context `{name}={value}` is not a valid image reference: {e}"),
                format!("pass an image as `--build-context {name}=docker-image://REF`"),
            )
        })?;
        Ok(NamedContext::Image(parsed.normalized()))
    } else if let Some(layout) = value.strip_prefix("oci-layout://") {
        caps.require_llb(
            "source.ocilayout",
            &format!("the oci-layout:// build context `{name}`"),
        )
        .map_err(|missing| {
            (
                Code::UnsupportedByBuilder,
                missing.to_string(),
                format!(
                    "build with a newer BuildKit, or load the image into the daemon and pass `--build-context {name}=docker-image://REF`"
                ),
            )
        })?;
        let (store, digest) = oci_layout_context(layout).map_err(|e| {
            (
                Code::BadBuildContext,
                format!("the build context `{name}={value}` is not a valid oci-layout:// context: {e}"),
                format!(
                    "pass it as `--build-context {name}=oci-layout://STORE@sha256:…` (the store as given to `--oci-layout`, the manifest digest)"
                ),
            )
        })?;
        Ok(NamedContext::OciLayout {
            reference: oci_reference(name, &store, &digest),
            store: OciStore {
                store,
                session: options.session_id().unwrap_or_default().to_string(),
            },
        })
    } else if let Some(local) = value.strip_prefix("local:") {
        Ok(NamedContext::Local {
            name: local.to_string(),
            session: options.local_session(local).unwrap_or_default(),
        })
    } else if let Some((identifier, url)) = git_context(value) {
        Ok(NamedContext::Git { identifier, url })
    } else if value.starts_with("https://") || value.starts_with("http://") {
        Ok(NamedContext::Http(value.to_string()))
    } else {
        Err((
            Code::UnsupportedBuildContext,
            format!("the build context `{name}={value}` is not supported"),
            "sysfile takes directories, docker-image://, oci-layout://, git and https contexts"
                .to_string(),
        ))
    }
}

/// Splits the part after `oci-layout://` into the store ID and the manifest digest:
/// `STORE[:TAG]@sha256:…` (a tag only labels it; the digest selects the image).
pub fn oci_layout_context(layout: &str) -> Result<(String, String), String> {
    let Some((store_ref, digest)) = layout.rsplit_once('@') else {
        return Err("it has no `@sha256:…` digest".to_string());
    };
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("`{digest}` is not a sha256 digest"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("`{digest}` is not a sha256 digest"));
    }
    let last_slash = store_ref.rfind('/').map_or(0, |i| i + 1);
    let store = match store_ref[last_slash..].rfind(':') {
        Some(i) => &store_ref[..last_slash + i],
        None => store_ref,
    };
    if store.is_empty() {
        return Err("it names no store".to_string());
    }
    Ok((store.to_string(), digest.to_string()))
}

/// The reference of an `oci-layout://` source: like the Dockerfile frontend, the context's
/// name pinned to the digest (only the digest selects the image; the name labels it). A name
/// that is no image name falls back to the store's, then to `sysfile-context`.
fn oci_reference(name: &str, store: &str, digest: &str) -> String {
    let parsed = [
        name.to_string(),
        name.to_ascii_lowercase(),
        store.to_string(),
    ]
    .iter()
    .find_map(|candidate| {
        Reference::parse(candidate)
            .ok()
            .map(|r| (candidate.clone(), r))
    });
    let (written, mut reference) = match parsed {
        Some(found) => found,
        None => match Reference::parse("sysfile-context") {
            Ok(r) => ("sysfile-context".to_string(), r),
            Err(_) => return format!("docker.io/library/sysfile-context@{digest}"),
        },
    };
    // `base` is `docker.io/library/base@sha256:…`, without the `latest` a bare name implies.
    let last = written.rsplit('/').next().unwrap_or(&written);
    if !last.contains(':') {
        reference.tag = None;
    }
    reference.digest = Some(digest.to_string());
    reference.normalized()
}

/// A git URL as BuildKit's git source wants it: the identifier `host/path[#ref[:subdir]]` and
/// the full URL without the fragment (`git.fullurl`). `None` when `value` is not a git URL.
pub fn git_context(value: &str) -> Option<(String, String)> {
    let (url, fragment) = match value.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (value, None),
    };
    let is_git = url.starts_with("git://")
        || url.starts_with("git@")
        || url.starts_with("ssh://")
        || url.ends_with(".git")
        || url.starts_with("github.com/");
    if !is_git {
        return None;
    }
    // `git@host:org/repo.git` is `host/org/repo.git`.
    let path = if let Some(rest) = url.strip_prefix("git@") {
        rest.replacen(':', "/", 1)
    } else {
        let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        without_scheme
            .split_once('@')
            .map_or(without_scheme, |(_, host)| host)
            .to_string()
    };
    let identifier = match fragment {
        Some(fragment) if !fragment.is_empty() => format!("{path}#{fragment}"),
        _ => path,
    };
    let full = if url.starts_with("github.com/") {
        format!("https://{url}")
    } else {
        url.to_string()
    };
    Some((identifier, full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_layout_contexts_name_a_store_and_a_digest() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            oci_layout_context(&format!("store@{d}")),
            Ok(("store".into(), d.clone()))
        );
        assert_eq!(
            oci_layout_context(&format!("local/sysfile:dev@{d}")),
            Ok(("local/sysfile".into(), d.clone()))
        );
        assert_eq!(
            oci_layout_context(&format!("localhost:5000/x@{d}")),
            Ok(("localhost:5000/x".into(), d.clone()))
        );
        assert!(oci_layout_context("store").is_err());
        assert!(oci_layout_context(&format!("@{d}")).is_err());
        assert!(oci_layout_context("store@sha256:AB").is_err());
        assert!(oci_layout_context(&format!("store@sha512:{}", "ab".repeat(32))).is_err());
        assert_eq!(
            oci_reference("base", "store", &d),
            format!("docker.io/library/base@{d}")
        );
        assert_eq!(
            oci_reference("local/sysfile:dev", "store", &d),
            format!("docker.io/local/sysfile:dev@{d}")
        );
        assert_eq!(
            oci_reference("Tools", "store", &d),
            format!("docker.io/library/tools@{d}")
        );
        assert_eq!(
            oci_reference("a b", "my.registry/layouts", &d),
            format!("my.registry/layouts@{d}")
        );
    }

    #[test]
    fn git_contexts_split_the_fragment_off_the_full_url() {
        let ctx = |v: &str| git_context(v);
        assert_eq!(
            ctx("https://github.com/org/repo.git#v1.2:sub"),
            Some((
                "github.com/org/repo.git#v1.2:sub".into(),
                "https://github.com/org/repo.git".into()
            ))
        );
        assert_eq!(
            ctx("git@github.com:org/repo.git#main"),
            Some((
                "github.com/org/repo.git#main".into(),
                "git@github.com:org/repo.git".into()
            ))
        );
        assert_eq!(
            ctx("git://host/repo"),
            Some(("host/repo".into(), "git://host/repo".into()))
        );
        assert_eq!(
            ctx("ssh://git@host/repo.git"),
            Some(("host/repo.git".into(), "ssh://git@host/repo.git".into()))
        );
        assert_eq!(ctx("https://example.com/file.tar"), None);
    }
}
