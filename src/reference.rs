//! Image references: normalisation to the fully qualified form BuildKit uses.

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `registry.example.com:5000`, …
    pub domain: String,
    /// `library/debian`, `local/debian`, …
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:…`
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises like Docker: default domain `docker.io`, `library/` for
    /// official images, tag `latest` when neither tag nor digest is given.
    pub fn parse(input: &str) -> Result<Reference, String> {
        let input = input.trim();
        if input.is_empty() {
            return Err("the image reference is empty".into());
        }
        if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("the image reference contains {c:?}"));
        }
        let (name, digest) = match input.split_once('@') {
            Some((name, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or("only sha256 digests are supported")?;
                if hex.len() != 64
                    || !hex
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                {
                    return Err(format!("`{digest}` is not a sha256 digest"));
                }
                (name, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !tag.starts_with(['.', '-']);
            if !valid {
                return Err(format!("`{tag}` is not a valid tag"));
            }
        }
        let (domain, path) = match repo.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            Some(_) => ("docker.io".to_string(), repo.to_string()),
            None => ("docker.io".to_string(), format!("library/{repo}")),
        };
        let path_ok = !path.is_empty()
            && path.split('/').all(|component| {
                !component.is_empty()
                    && component
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                    && component.starts_with(|c: char| c.is_ascii_alphanumeric())
            });
        if !path_ok {
            return Err(format!(
                "`{repo}` is not a valid repository name (lowercase letters, digits, `.`, `_`, `-` and `/`)"
            ));
        }
        let tag = tag
            .map(str::to_string)
            .or_else(|| digest.is_none().then(|| "latest".to_string()));
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `docker.io/library/debian:12` (with `@digest` when there is one).
    pub fn normalized(&self) -> String {
        let mut out = format!("{}/{}", self.domain, self.path);
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// The same reference pinned to `digest` (keeping the tag for readability).
    pub fn pinned(&self, digest: &str) -> String {
        let mut pinned = self.clone();
        pinned.digest = Some(digest.to_string());
        pinned.normalized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s)
            .map(|r| r.normalized())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("debian"), "docker.io/library/debian:latest");
        assert_eq!(norm("debian:12"), "docker.io/library/debian:12");
        assert_eq!(
            norm("local/debian:bookworm"),
            "docker.io/local/debian:bookworm"
        );
        assert_eq!(norm("localhost:5000/x/y"), "localhost:5000/x/y:latest");
        assert_eq!(
            norm("quay.io/centos/centos:stream9"),
            "quay.io/centos/centos:stream9"
        );
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(
            norm(&format!("debian@{d}")),
            format!("docker.io/library/debian@{d}")
        );
        assert_eq!(
            norm(&format!("debian:12@{d}")),
            format!("docker.io/library/debian:12@{d}")
        );
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Debian",
            "a b",
            "debian:",
            "debian@sha256:xyz",
            "/x",
            "x//y",
            "debian:-x",
        ] {
            assert!(norm(bad).starts_with("error"), "{bad:?} accepted");
        }
    }

    #[test]
    fn pins_by_digest() {
        let d = "sha256:".to_string() + &"b".repeat(64);
        assert_eq!(
            Reference::parse("debian:12").unwrap().pinned(&d),
            format!("docker.io/library/debian:12@{d}")
        );
    }
}
