//! What `sysfile run` knows about the host: cgroup version, engine version, userns; and the pure parsers that turn engine and kernel output into those facts.
//!
//! Nothing here does I/O: `engine.rs` runs the commands and hands their output to these parsers.

use super::Engine;

/// The cgroup hierarchy mounted at `/sys/fs/cgroup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// cgroup v1, including the "hybrid" layout (a tmpfs with one hierarchy per controller).
    V1,
    /// The unified cgroup v2 hierarchy (`cgroup2fs`).
    V2,
}

impl CgroupVersion {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

/// Everything the flag choice depends on besides the image labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// The engine that will run the container.
    pub engine: Engine,
    /// The cgroup version of the host.
    pub cgroup: CgroupVersion,
    /// The file-system type seen at `/sys/fs/cgroup` (`cgroup2fs`, `tmpfs`, …), for `--explain`.
    pub cgroup_fs: String,
    /// The engine's server version as printed (`26.1.5+dfsg1`), if it could be read.
    pub engine_version: Option<String>,
    /// The daemon runs rootless (`name=rootless` in its security options).
    pub rootless: bool,
    /// The daemon remaps user namespaces (`name=userns` in its security options).
    pub userns: bool,
}

impl HostFacts {
    /// The engine version as `(major, minor)`, when it parses.
    pub fn version(&self) -> Option<(u32, u32)> {
        self.engine_version.as_deref().and_then(parse_version)
    }

    /// The daemon's cgroup mount is writable without help: rootless or userns-remapped.
    pub fn user_namespaced(&self) -> bool {
        self.rootless || self.userns
    }
}

/// The cgroup version for a file-system type of `/sys/fs/cgroup` (`stat -fc %T`).
pub fn cgroup_from_fs_type(fs_type: &str) -> CgroupVersion {
    if fs_type.trim() == "cgroup2fs" || fs_type.trim() == "cgroup2" {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

/// The file-system type mounted at `/sys/fs/cgroup`, from `/proc/self/mountinfo` text
/// (the last mount of that point wins, as the kernel shows it).
pub fn cgroup_fs_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let fs_type = right.split(' ').next()?;
            (mount_point == "/sys/fs/cgroup").then(|| fs_type.to_string())
        })
        .next_back()
}

/// Parses an engine version leniently: `26.1.5+dfsg1`, `v20.10.24`, `28.0.0-rc.1`, `5.4` → `(major, minor)`.
/// A missing minor reads as 0; no leading digits means `None`.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let text = text.trim();
    let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
    let mut parts = text.split('.');
    let major = leading_number(parts.next()?)?;
    let minor = parts.next().and_then(leading_number).unwrap_or(0);
    Some((major, minor))
}

fn leading_number(s: &str) -> Option<u32> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Reads `(rootless, userns)` from `docker info --format '{{json .SecurityOptions}}'`
/// (e.g. `["name=seccomp,profile=builtin","name=rootless"]`). Anything unreadable is `(false, false)`.
pub fn parse_security_options(json: &str) -> (bool, bool) {
    let options: Vec<String> = serde_json::from_str(json.trim()).unwrap_or_default();
    let has = |name: &str| {
        options
            .iter()
            .any(|o| o.split(',').any(|kv| kv == format!("name={name}")))
    };
    (has("rootless"), has("userns"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_leniently() {
        assert_eq!(parse_version("26.1.5+dfsg1"), Some((26, 1)));
        assert_eq!(parse_version("20.10.24+dfsg1\n"), Some((20, 10)));
        assert_eq!(parse_version("v28.0.0-rc.1"), Some((28, 0)));
        assert_eq!(parse_version("28"), Some((28, 0)));
        assert_eq!(parse_version("5.4.2"), Some((5, 4)));
        assert_eq!(parse_version("19.03.15"), Some((19, 3)));
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("dev"), None);
        assert_eq!(parse_version("master-dockerproject-2024"), None);
    }

    #[test]
    fn cgroup_version_from_fs_type() {
        assert_eq!(cgroup_from_fs_type("cgroup2fs\n"), CgroupVersion::V2);
        assert_eq!(cgroup_from_fs_type("tmpfs"), CgroupVersion::V1);
        assert_eq!(cgroup_from_fs_type("cgroup"), CgroupVersion::V1);
    }

    #[test]
    fn mountinfo_finds_the_cgroup_mount() {
        let hybrid = "\
22 27 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
";
        assert_eq!(cgroup_fs_from_mountinfo(hybrid).as_deref(), Some("tmpfs"));
        let unified =
            "30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup_fs_from_mountinfo(unified).as_deref(),
            Some("cgroup2")
        );
        assert_eq!(
            cgroup_from_fs_type(&cgroup_fs_from_mountinfo(unified).unwrap()),
            CgroupVersion::V2
        );
        assert_eq!(cgroup_fs_from_mountinfo("garbage\n"), None);
    }

    #[test]
    fn security_options() {
        assert_eq!(
            parse_security_options(r#"["name=seccomp,profile=builtin"]"#),
            (false, false)
        );
        assert_eq!(
            parse_security_options(
                r#"["name=seccomp,profile=builtin","name=rootless","name=cgroupns"]"#
            ),
            (true, false)
        );
        assert_eq!(
            parse_security_options(r#"["name=apparmor","name=userns"]"#),
            (false, true)
        );
        assert_eq!(parse_security_options("null"), (false, false));
        assert_eq!(parse_security_options("not json"), (false, false));
    }
}
