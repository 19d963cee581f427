//! `sysfile k8s`: a Pod or Deployment manifest for a sysfile image, written by a tiny deterministic YAML emitter.
//!
//! The manifest carries what the engine flags carry under Docker: memory-backed `emptyDir`s for the
//! tmpfs mounts, `tty: true`, the stop timeout as `terminationGracePeriodSeconds`, probes from the
//! health label. A writable cgroup cannot be asked for portably, so it is explained in comments and an
//! annotation (CRI-O systemd mode, a containerd `cgroup_writable` RuntimeClass); never `privileged`.
//!
//! Every value comes from [`parse_labels`] or the command line, and every string scalar goes
//! through [`scalar`]: plain only when made of a few safe ASCII characters, otherwise a
//! double-quoted YAML scalar whose every character outside printable ASCII is a `\u` escape, so
//! no value can end a line, start a comment or a document, or carry a terminal escape. Comments
//! are fixed text. Label warnings are returned to the caller (printed on stderr), never written
//! into the YAML.

use super::labels::{TmpfsMount, Warning, parse_labels, show};
use super::{ImageLabels, Labels};

/// What the user asked `sysfile k8s` for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sRequest {
    /// The image reference, written to the manifest unchanged.
    pub image: String,
    /// `--name`; defaults to the image's last path component without tag.
    pub name: Option<String>,
    /// Print a Deployment instead of a Pod.
    pub deployment: bool,
    /// Deployment replicas.
    pub replicas: u32,
    /// The Kubernetes version the manifest is for: decides which fields are written.
    pub kube_version: KubeVersion,
    /// Whether to ask for a user namespace (`hostUsers: false`).
    pub userns: Userns,
    /// Write `lifecycle.stopSignal: SIGRTMIN+3` (needs the alpha `ContainerStopSignals` gate).
    pub stop_signal: bool,
}

/// A Kubernetes `major.minor` version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion(pub u32, pub u32);

/// The oldest Kubernetes `sysfile k8s` writes for (`hostUsers` and `spec.os` exist from 1.25).
pub const MIN_KUBE_VERSION: KubeVersion = KubeVersion(1, 25);
/// The default `--kube-version`.
pub const DEFAULT_KUBE_VERSION: KubeVersion = KubeVersion(1, 33);
/// From this version user namespaces (`UserNamespacesSupport`) are on by default (beta; GA in 1.36).
pub const USERNS_DEFAULT_ON: KubeVersion = KubeVersion(1, 33);
/// The first version with `lifecycle.stopSignal` (alpha, feature gate `ContainerStopSignals`).
pub const STOP_SIGNAL_VERSION: KubeVersion = KubeVersion(1, 33);

impl std::fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl std::str::FromStr for KubeVersion {
    type Err = String;

    /// `1.33`, `v1.33` or `1.33.2` (the patch is ignored); at least [`MIN_KUBE_VERSION`].
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{} is not a Kubernetes version like 1.33 (at least {MIN_KUBE_VERSION})",
                show(text)
            )
        };
        let t = text.strip_prefix('v').unwrap_or(text);
        let mut parts = t.split('.');
        let num = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            (!p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        let major = num(parts.next()).ok_or_else(bad)?;
        let minor = num(parts.next()).ok_or_else(bad)?;
        if let Some(patch) = parts.next() {
            num(Some(patch)).ok_or_else(bad)?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        let v = KubeVersion(major, minor);
        if v < MIN_KUBE_VERSION || major != 1 {
            return Err(bad());
        }
        Ok(v)
    }
}

/// `--userns`: whether the pod asks for a user namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Userns {
    /// `hostUsers: false` from Kubernetes 1.33 on, where the feature is on by default.
    Auto,
    /// Always `hostUsers: false` (before 1.33 the `UserNamespacesSupport` gate must be on).
    On,
    /// Never: the pod shares the node's user namespace.
    Off,
}

/// The annotation that tells operators about the cgroup requirement.
pub const CGROUP_ANNOTATION: &str = "sysfile.runtime.cgroup";

/// The default object name for an image: the last path component without tag or digest,
/// made a DNS-1123 label (lowercase alphanumerics and `-`, at most 63 characters).
pub fn default_name(image: &str) -> String {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split(':').next().unwrap_or(last);
    let mut name: String = last
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() { c } else { '-' }
        })
        .collect();
    name.truncate(63);
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "system".to_string()
    } else {
        name
    }
}

/// Checks a user-given name: a DNS-1123 label.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a valid Kubernetes name (lowercase letters, digits and `-`, at most 63, \
             starting and ending with a letter or digit)",
            show(name)
        ))
    }
}

/// A YAML scalar: plain when that cannot be misread, else double-quoted with every character
/// outside printable ASCII escaped (`\uXXXX`, `\UXXXXXXXX`), so the output is one line of ASCII.
pub fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@=".contains(c))
        && !s.starts_with(['-', '.', '@', '=', '+'])
        && s.parse::<f64>().is_err()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
        );
    if plain { s.to_string() } else { quoted(s) }
}

/// A double-quoted YAML scalar in pure ASCII.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A flow sequence of strings, `["a", "b"]`, each item [`quoted`].
fn flow(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", items.join(", "))
}

/// The `emptyDir` size for a tmpfs mount: its `size=` option, else a default by mount point.
fn size_limit(mount: &TmpfsMount) -> String {
    if let Some(bytes) = mount.size_bytes() {
        return match bytes {
            b if b % (1 << 30) == 0 => format!("{}Gi", b >> 30),
            b if b % (1 << 20) == 0 => format!("{}Mi", b >> 20),
            b if b % (1 << 10) == 0 => format!("{}Ki", b >> 10),
            b => b.to_string(),
        };
    }
    match mount.path.as_str() {
        "/run/lock" => "8Mi",
        "/tmp" => "256Mi",
        _ => "64Mi",
    }
    .to_string()
}

/// A volume name for a mount point: `/run/lock` → `run-lock`.
/// One volume name per mount, made unique (`tmp`, `tmp-2`, …): different paths can map to the
/// same name (`/a/b`, `/a-b`).
fn volume_names(mounts: &[TmpfsMount]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in mounts {
        let base = volume_name(&m.path);
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            let mut stem = base.clone();
            stem.truncate(55);
            name = format!("{}-{n}", stem.trim_end_matches('-'));
            n += 1;
        }
        names.push(name);
    }
    names
}

fn volume_name(path: &str) -> String {
    default_name(&path.trim_matches('/').replace(['/', ':'], "-"))
}

/// Lines, each already indented relative to its block.
struct Yaml {
    lines: Vec<String>,
}

impl Yaml {
    fn line(&mut self, indent: usize, text: impl AsRef<str>) {
        self.lines
            .push(format!("{}{}", " ".repeat(indent), text.as_ref()));
    }
}

/// Prints the manifest and returns it with the label warnings (for stderr). Pure and deterministic.
pub fn manifest(labels: &Labels, request: &K8sRequest) -> Result<(String, Vec<Warning>), String> {
    let (c, warnings) = parse_labels(labels);
    let name = match &request.name {
        Some(n) => {
            check_name(n)?;
            n.clone()
        }
        None => default_name(&request.image),
    };
    let userns = match request.userns {
        Userns::Auto => request.kube_version >= USERNS_DEFAULT_ON,
        Userns::On => true,
        Userns::Off => false,
    };
    let stop_signal = request.stop_signal && request.kube_version >= STOP_SIGNAL_VERSION;
    if request.stop_signal && !stop_signal {
        return Err(format!(
            "--stop-signal needs Kubernetes {STOP_SIGNAL_VERSION} or later (lifecycle.stopSignal); \
             --kube-version is {}",
            request.kube_version
        ));
    }
    let mut y = Yaml { lines: Vec::new() };
    y.line(
        0,
        format!(
            "# Generated by `sysfile k8s` for Kubernetes {}.",
            request.kube_version
        ),
    );
    if !c.boot {
        y.line(
            0,
            "# The image has no sysfile.systemd.boot=true label: it does not ask to boot systemd, so defaults are used.",
        );
    }
    if !warnings.is_empty() {
        y.line(
            0,
            "# Some image labels were unusable and replaced by defaults; `sysfile k8s` printed why on stderr.",
        );
    }
    if let Some(v) = c.systemd_version {
        if v > super::rules::HIGHEST_V1_BOOTED {
            y.line(0, format!("# systemd {v} needs cgroup v2 nodes."));
        }
    }
    y.line(
        0,
        "# systemd as PID 1 needs a writable cgroup subtree, which a plain pod does not get:",
    );
    y.line(0, "#  - CRI-O: an entrypoint whose argv[0] is /sbin/init (or basename systemd) turns on systemd mode; nothing more.");
    y.line(0, "#  - containerd >= 2.1: a RuntimeClass whose runc handler sets cgroup_writable = true (see runtimeClassName).");
    y.line(0, "#  - privileged: true would also work but makes /sys and every cgroup writable; it is not used here.");
    if request.deployment {
        y.line(0, "apiVersion: apps/v1");
        y.line(0, "kind: Deployment");
    } else {
        y.line(0, "apiVersion: v1");
        y.line(0, "kind: Pod");
    }
    metadata(&mut y, 0, Some(&name), &name, true);
    y.line(0, "spec:");
    let pod_indent = if request.deployment {
        y.line(2, format!("replicas: {}", request.replicas));
        y.line(2, "selector:");
        y.line(4, "matchLabels:");
        y.line(6, format!("app.kubernetes.io/name: {}", scalar(&name)));
        y.line(2, "template:");
        metadata(&mut y, 4, None, &name, true);
        y.line(4, "spec:");
        6
    } else {
        2
    };
    let fields = PodFields {
        userns,
        stop_signal,
    };
    pod_spec(&mut y, pod_indent, &name, &request.image, &c, fields);
    let mut text = y.lines.join("\n");
    text.push('\n');
    Ok((text, warnings))
}

/// The version-dependent pod fields.
#[derive(Clone, Copy)]
struct PodFields {
    userns: bool,
    stop_signal: bool,
}

fn metadata(y: &mut Yaml, indent: usize, name: Option<&str>, app: &str, annotate: bool) {
    y.line(indent, "metadata:");
    if let Some(name) = name {
        y.line(indent + 2, format!("name: {}", scalar(name)));
    }
    y.line(indent + 2, "labels:");
    y.line(
        indent + 4,
        format!("app.kubernetes.io/name: {}", scalar(app)),
    );
    if annotate {
        y.line(indent + 2, "annotations:");
        y.line(
            indent + 4,
            format!(
                "{CGROUP_ANNOTATION}: {}",
                scalar(
                    "systemd needs a writable cgroup: CRI-O systemd mode (argv[0] /sbin/init), or a containerd >= 2.1 \
                     RuntimeClass with cgroup_writable = true; not privileged"
                )
            ),
        );
    }
}

fn pod_spec(y: &mut Yaml, i: usize, name: &str, image: &str, c: &ImageLabels, f: PodFields) {
    y.line(i, "# runtimeClassName: systemd  # containerd >= 2.1: a RuntimeClass whose runc options set cgroup_writable = true");
    if f.stop_signal {
        y.line(i, "os:");
        y.line(
            i + 2,
            "name: linux  # lifecycle.stopSignal needs spec.os.name",
        );
    }
    if f.userns {
        y.line(
            i,
            "hostUsers: false  # a user namespace: root in the container is not root on the node",
        );
    }
    y.line(
        i,
        format!("terminationGracePeriodSeconds: {}", c.stop_timeout),
    );
    y.line(i, "containers:");
    y.line(i + 2, format!("- name: {}", scalar(name)));
    let i = i + 4;
    y.line(i, format!("image: {}", scalar(image)));
    y.line(
        i,
        "tty: true  # /dev/console: systemd's boot log reaches `kubectl logs`",
    );
    y.line(i, "stdin: false");
    if f.stop_signal {
        y.line(i, "lifecycle:");
        y.line(
            i + 2,
            "stopSignal: SIGRTMIN+3  # systemd halts on SIGRTMIN+3 (alpha in 1.33: ContainerStopSignals gate)",
        );
    }
    y.line(i, "securityContext:");
    y.line(
        i + 2,
        "# The writable cgroup comes from the runtime (see the header), not from privileged.",
    );
    y.line(i + 2, "privileged: false");
    if let Some(cmd) = &c.health_cmd {
        let command = flow(&["/bin/sh", "-c", cmd]);
        for (probe, period, timeout, failures, comment) in [
            ("startupProbe", 2, 5, 60, "  # covers boot: up to 120 s"),
            ("readinessProbe", 10, 5, 3, ""),
            ("livenessProbe", 30, 10, 3, ""),
        ] {
            y.line(i, format!("{probe}:{comment}"));
            y.line(i + 2, "exec:");
            y.line(i + 4, format!("command: {command}"));
            y.line(i + 2, format!("periodSeconds: {period}"));
            y.line(i + 2, format!("timeoutSeconds: {timeout}"));
            y.line(i + 2, format!("failureThreshold: {failures}"));
        }
    }
    let names = volume_names(&c.tmpfs);
    y.line(i, "volumeMounts:");
    for (m, name) in c.tmpfs.iter().zip(&names) {
        y.line(i + 2, format!("- name: {}", scalar(name)));
        y.line(i + 4, format!("mountPath: {}", scalar(&m.path)));
    }
    let i = i - 4;
    y.line(
        i,
        "volumes:  # memory-backed, like Docker's --tmpfs: systemd needs them before PID 1 starts",
    );
    for (m, name) in c.tmpfs.iter().zip(&names) {
        y.line(i + 2, format!("- name: {}", scalar(name)));
        y.line(i + 4, "emptyDir:");
        y.line(i + 6, "medium: Memory");
        y.line(i + 6, format!("sizeLimit: {}", size_limit(m)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sshd_labels() -> Labels {
        labels(&[
            ("sysfile.systemd.boot", "true"),
            ("sysfile.systemd.version", "252"),
            ("sysfile.systemd.cgroup", "v1,v2"),
            ("sysfile.runtime.tmpfs", "/run:exec,mode=755;/run/lock;/tmp"),
            ("sysfile.runtime.tty", "required"),
            ("sysfile.runtime.stop-timeout", "30"),
            ("sysfile.health.cmd", "systemctl is-system-running --quiet"),
        ])
    }

    fn request(image: &str) -> K8sRequest {
        K8sRequest {
            image: image.to_string(),
            name: None,
            deployment: false,
            replicas: 1,
            kube_version: DEFAULT_KUBE_VERSION,
            userns: Userns::Auto,
            stop_signal: false,
        }
    }

    #[test]
    fn pod_for_sshd_labels() {
        let yaml = manifest(&sshd_labels(), &request("sysfile-example/sshd:latest"))
            .unwrap()
            .0;
        insta::assert_snapshot!("k8s_pod_sshd", yaml);
    }

    #[test]
    fn pod_with_empty_health_cmd_has_no_probes() {
        let mut l = sshd_labels();
        l.insert("sysfile.health.cmd".into(), String::new());
        l.insert("sysfile.runtime.stop-timeout".into(), "45".into());
        let yaml = manifest(
            &l,
            &request("registry.example.com:5000/team/web@sha256:abcd"),
        )
        .unwrap()
        .0;
        assert!(!yaml.contains("Probe"));
        insta::assert_snapshot!("k8s_pod_no_health", yaml);
    }

    #[test]
    fn deployment_with_three_replicas() {
        let req = K8sRequest {
            name: Some("sshd-fleet".into()),
            deployment: true,
            replicas: 3,
            ..request("sysfile-example/sshd:latest")
        };
        let yaml = manifest(&sshd_labels(), &req).unwrap().0;
        insta::assert_snapshot!("k8s_deployment_replicas_3", yaml);
    }

    #[test]
    fn pod_for_an_image_not_built_by_sysfile() {
        let l = labels(&[("org.opencontainers.image.title", "plain")]);
        let yaml = manifest(&l, &request("docker.io/library/debian:bookworm"))
            .unwrap()
            .0;
        assert!(yaml.contains("does not ask to boot systemd"));
        insta::assert_snapshot!("k8s_pod_not_sysfile", yaml);
    }

    #[test]
    fn never_privileged_and_always_tty() {
        for l in [sshd_labels(), Labels::new()] {
            let yaml = manifest(&l, &request("x")).unwrap().0;
            assert!(yaml.lines().any(|line| line.trim() == "privileged: false"));
            assert!(
                !yaml
                    .lines()
                    .any(|line| line.trim_start().starts_with("privileged: true"))
            );
            assert!(yaml.contains("tty: true"));
            assert!(yaml.contains("stdin: false"));
        }
    }

    #[test]
    fn fields_follow_the_kube_version() {
        let req = |minor, userns, stop_signal| K8sRequest {
            kube_version: KubeVersion(1, minor),
            userns,
            stop_signal,
            ..request("sysfile-example/sshd:latest")
        };
        let text = |r: &K8sRequest| manifest(&sshd_labels(), r).unwrap().0;
        // userns: auto is on from 1.33, where the feature is on by default.
        assert!(!text(&req(32, Userns::Auto, false)).contains("hostUsers"));
        assert!(text(&req(33, Userns::Auto, false)).contains("\n  hostUsers: false"));
        assert!(text(&req(25, Userns::On, false)).contains("hostUsers: false"));
        assert!(!text(&req(37, Userns::Off, false)).contains("hostUsers"));
        // stopSignal needs 1.33 and spec.os.name.
        let yaml = text(&req(33, Userns::Off, true));
        assert!(yaml.contains("\n  os:\n    name: linux"), "{yaml}");
        assert!(
            yaml.contains("\n      lifecycle:\n        stopSignal: SIGRTMIN+3"),
            "{yaml}"
        );
        assert!(!text(&req(33, Userns::Off, false)).contains("stopSignal"));
        assert!(manifest(&sshd_labels(), &req(32, Userns::Off, true)).is_err());
        insta::assert_snapshot!("k8s_pod_1_30", text(&req(30, Userns::Auto, false)));
        insta::assert_snapshot!(
            "k8s_pod_1_34_stop_signal",
            text(&req(34, Userns::Auto, true))
        );
    }

    #[test]
    fn volume_names_are_unique() {
        let mut l = sshd_labels();
        let long = format!("/{}", "a".repeat(70));
        l.insert(
            "sysfile.runtime.tmpfs".into(),
            format!("/run;/a/b;/a-b;/a+b;{long};{long}/b;/+;/@"),
        );
        let yaml = manifest(&l, &request("x")).unwrap().0;
        let names: Vec<&str> = yaml
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- name: "))
            .collect();
        // The container's name, then the mounts' names twice (volumeMounts, volumes).
        let mounts = &names[1..9];
        assert_eq!(mounts, &names[9..]);
        let mut unique = mounts.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8, "{mounts:?}");
        assert!(mounts.iter().all(|n| check_name(n).is_ok()), "{mounts:?}");
    }

    #[test]
    fn kube_versions_parse() {
        assert_eq!("1.33".parse(), Ok(KubeVersion(1, 33)));
        assert_eq!("v1.30.2".parse(), Ok(KubeVersion(1, 30)));
        for bad in ["1.24", "2.0", "1", "1.x", "1.33.0.1", "", "1.33\n", "01.2a"] {
            let err = bad.parse::<KubeVersion>().unwrap_err();
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn size_limits_come_from_the_size_option() {
        let mut l = sshd_labels();
        l.insert(
            "sysfile.runtime.tmpfs".into(),
            "/run:exec,size=1g;/run/lock:size=100k;/tmp:size=1000".into(),
        );
        let yaml = manifest(&l, &request("x")).unwrap().0;
        for want in ["sizeLimit: 1Gi", "sizeLimit: 100Ki", "sizeLimit: 1000\n"] {
            assert!(yaml.contains(want), "{want} in {yaml}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(default_name("sysfile-example/sshd:latest"), "sshd");
        assert_eq!(default_name("localhost:5000/a/b/Web_App:1.0"), "web-app");
        assert_eq!(default_name("nginx"), "nginx");
        assert_eq!(default_name("x/y@sha256:00ff"), "y");
        assert_eq!(default_name("___"), "system");
        assert!(check_name("ok-name-1").is_ok());
        assert!(check_name("Bad").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("").is_err());
        assert!(
            manifest(
                &Labels::new(),
                &K8sRequest {
                    name: Some("Bad_Name".into()),
                    ..request("x")
                }
            )
            .is_err()
        );
    }

    #[test]
    fn scalars() {
        assert_eq!(scalar("sshd"), "sshd");
        assert_eq!(
            scalar("docker.io/library/debian"),
            "docker.io/library/debian"
        );
        assert_eq!(scalar("a:b"), "\"a:b\"");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("No"), "\"No\"");
        assert_eq!(scalar("1.5"), "\"1.5\"");
        assert_eq!(scalar("30"), "\"30\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("-x"), "\"-x\"");
        assert_eq!(scalar("say \"hi\" # x"), r#""say \"hi\" # x""#);
        // YAML 1.1 numbers, infinities and booleans stay strings.
        for s in [
            "+.inf", ".nan", "0x1f", "0o17", "1_000", "Off", "Y", "NULL", "inf",
        ] {
            assert!(scalar(s).starts_with('"'), "{s}");
        }
        assert_eq!(scalar("a\u{2028}b\u{1b}"), r#""a\u2028b\u001B""#);
        assert_eq!(scalar("\u{1f600}"), r#""\U0001F600""#);
    }
}
