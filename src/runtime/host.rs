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
    /// The cgroup file systems mounted below `/sys/fs/cgroup` (from `/proc/self/mountinfo`);
    /// empty when unknown or on cgroup v2.
    pub cgroup_mounts: Vec<CgroupMount>,
}

/// A cgroup hierarchy mounted below `/sys/fs/cgroup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// The mount point, e.g. `/sys/fs/cgroup/systemd`.
    pub path: String,
    /// `cgroup` or `cgroup2`.
    pub fs_type: String,
}

/// The named `name=systemd` hierarchy of a cgroup v1 host.
pub const SYSTEMD_HIERARCHY: &str = "/sys/fs/cgroup/systemd";
/// The cgroup2 hierarchy of a hybrid host.
pub const UNIFIED_HIERARCHY: &str = "/sys/fs/cgroup/unified";

impl HostFacts {
    /// The engine version as `(major, minor)`, when it parses.
    pub fn version(&self) -> Option<(u32, u32)> {
        self.engine_version.as_deref().and_then(parse_version)
    }

    /// The daemon's cgroup mount is writable without help: rootless or userns-remapped.
    pub fn user_namespaced(&self) -> bool {
        self.rootless || self.userns
    }

    /// A cgroup v1 host that also mounts cgroup2 at `/sys/fs/cgroup/unified` (systemd's "hybrid" layout).
    pub fn hybrid(&self) -> bool {
        self.cgroup == CgroupVersion::V1
            && self
                .cgroup_mounts
                .iter()
                .any(|m| m.path == UNIFIED_HIERARCHY && m.fs_type == "cgroup2")
    }

    /// The host mounts the `name=systemd` hierarchy at `/sys/fs/cgroup/systemd`.
    pub fn has_systemd_hierarchy(&self) -> bool {
        self.cgroup_mounts
            .iter()
            .any(|m| m.path == SYSTEMD_HIERARCHY && m.fs_type == "cgroup")
    }
}

/// The cgroup file systems (`cgroup`, `cgroup2`) mounted directly below `/sys/fs/cgroup`, from
/// `/proc/self/mountinfo` text, in mount order; a later mount of the same point replaces an earlier one.
pub fn cgroup_mounts_from_mountinfo(mountinfo: &str) -> Vec<CgroupMount> {
    let mut mounts: Vec<CgroupMount> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let (Some(path), Some(fs_type)) = (left.split(' ').nth(4), right.split(' ').next()) else {
            continue;
        };
        let Some(name) = path.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        if name.is_empty() || name.contains('/') || !matches!(fs_type, "cgroup" | "cgroup2") {
            continue;
        }
        mounts.retain(|m| m.path != path);
        mounts.push(CgroupMount {
            path: path.to_string(),
            fs_type: fs_type.to_string(),
        });
    }
    mounts
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
    fn mountinfo_lists_the_hierarchies() {
        let hybrid = "\
25 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/cpu/extra rw,nosuid shared:15 - cgroup cgroup rw,cpu
32 22 0:30 / /sys/fs/cgroupx rw shared:16 - cgroup cgroup rw,memory
";
        let mounts = cgroup_mounts_from_mountinfo(hybrid);
        let paths: Vec<&str> = mounts.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/sys/fs/cgroup/unified",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/cpu,cpuacct"
            ]
        );
        let mut facts = HostFacts {
            engine: Engine::Docker,
            cgroup: CgroupVersion::V1,
            cgroup_fs: "tmpfs".into(),
            engine_version: None,
            rootless: false,
            userns: false,
            cgroup_mounts: mounts,
        };
        assert!(facts.hybrid());
        assert!(facts.has_systemd_hierarchy());
        facts.cgroup_mounts.retain(|m| m.path != UNIFIED_HIERARCHY);
        assert!(!facts.hybrid());
        facts.cgroup_mounts.clear();
        assert!(!facts.has_systemd_hierarchy());
        assert!(cgroup_mounts_from_mountinfo("garbage\n").is_empty());
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
