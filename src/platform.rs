//! OCI platforms (`os/arch[/variant]`), parsed and printed in one place: the spec's
//! `[image] platform`, the `platform` build option, `sysfile llb --platform` and the workers'
//! platforms all go through [`Platform::parse`] and [`Platform::id`].
//!
//! Pure: this module imports nothing from the crate; `llb` turns a [`Platform`] into protobuf.

use std::fmt;

/// An OCI platform as sysfile builds for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// Empty when the platform has none.
    pub variant: String,
}

impl Platform {
    /// Parses `os/arch[/variant]`: two or three parts of lowercase letters, digits, `_`, `.`
    /// and `-`. The error is a sentence naming the text.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let part_ok = |p: &&str| {
            !p.is_empty()
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
                })
        };
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if parts.iter().all(part_ok) => Ok(Platform {
                os: (*os).to_string(),
                architecture: (*arch).to_string(),
                variant: parts.get(2).map(|v| (*v).to_string()).unwrap_or_default(),
            }),
            _ => Err(format!(
                "`{s}` is not a platform (expected lowercase os/arch[/variant], e.g. linux/amd64)"
            )),
        }
    }

    /// The `linux/arm64/v8` style ID, as BuildKit's `platforms.Format`.
    pub fn id(&self) -> String {
        let mut id = format!("{}/{}", self.os, self.architecture);
        if !self.variant.is_empty() {
            id.push('/');
            id.push_str(&self.variant);
        }
        id
    }

    /// Whether a worker that runs `self` runs `wanted`: the same platform, or `wanted` names no
    /// variant and `self` is a variant of it.
    pub fn runs(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (self.variant == wanted.variant || wanted.variant.is_empty())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_same_text() {
        for text in [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
            "freebsd/riscv64",
        ] {
            assert_eq!(Platform::parse(text).map(|p| p.id()), Ok(text.to_string()));
        }
        for bad in [
            "",
            "linux",
            "linux/",
            "Linux/amd64",
            "linux/amd64/v8/x",
            "linux//v8",
        ] {
            let err = Platform::parse(bad).expect_err(bad);
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn a_worker_runs_its_platform_and_its_variants_base() {
        let p = |s: &str| Platform::parse(s).expect("a platform");
        assert!(p("linux/arm64/v8").runs(&p("linux/arm64")));
        assert!(p("linux/arm64/v8").runs(&p("linux/arm64/v8")));
        assert!(!p("linux/arm64").runs(&p("linux/arm64/v8")));
        assert!(!p("linux/amd64").runs(&p("linux/arm64")));
    }
}
