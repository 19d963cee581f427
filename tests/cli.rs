//! The `sysfile` command line: exit codes, diagnostics on stderr, LLB and schema on stdout.

use std::process::Command;

use prost::Message as _;

fn sysfile(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sysfile"))
        .args(args)
        .output()
        .expect("sysfile runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sshd example with its context (the key `scripts/demo` makes) in a directory of its own.
fn sshd_context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let example = std::path::Path::new("examples/sshd");
    std::fs::copy(example.join("Sysfile"), dir.path().join("Sysfile")).unwrap();
    std::fs::create_dir_all(dir.path().join("sshd_config.d")).unwrap();
    std::fs::copy(
        example.join("sshd_config.d/sysfile.conf"),
        dir.path().join("sshd_config.d/sysfile.conf"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/admin.pub"), "ssh-ed25519 AAAA test\n").unwrap();
    dir
}

#[test]
fn check_accepts_the_example_and_says_what_it_cannot_know() {
    let dir = sshd_context();
    let sysfile_path = dir.path().join("Sysfile");
    let (code, _, stderr) = sysfile(&["check", "-f", sysfile_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    // Whether the base can be pinned is the builder's to say: a note, not a guess.
    assert!(!stderr.contains("warning[unpinned-base-image]"), "{stderr}");
    assert!(
        stderr.contains("note: `local/debian:bookworm` is not pinned by digest")
            && stderr.contains("known only when the builder resolves it"),
        "{stderr}"
    );
    assert!(stderr.contains("Sysfile: ok"), "{stderr}");
    // Skipped, the rule says nothing at all.
    let text = std::fs::read_to_string(&sysfile_path).unwrap();
    std::fs::write(
        &sysfile_path,
        format!("{text}\n[lint]\nskip = [\"unpinned-base-image\"]\n"),
    )
    .unwrap();
    let (code, _, stderr) = sysfile(&["check", "-f", sysfile_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("unpinned-base-image"), "{stderr}");
}

/// `sysfile check` looks for the context files the steps read, by default in the Sysfile's
/// directory: missing, wrong kind or leading outside the context are located errors.
#[test]
fn check_checks_the_context_files_the_steps_read() {
    let dir = sshd_context();
    let sysfile_path = dir.path().join("Sysfile");
    let path = sysfile_path.to_str().unwrap();
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "-f", path];
        args.extend_from_slice(extra);
        sysfile(&args)
    };
    assert_eq!(check(&[]).0, 0, "{}", check(&[]).2);

    // A missing key, at its entry; the same with an explicit --context.
    std::fs::remove_file(dir.path().join("keys/admin.pub")).unwrap();
    let (code, _, stderr) = check(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr
            .contains("error[context-file-missing]: `keys/admin.pub` is not in the build context")
            && stderr.contains("Sysfile:21:20"),
        "{stderr}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, _, stderr) = check(&["--context", elsewhere.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`sshd_config.d/sysfile.conf` is not in the build context")
            && stderr.contains("Sysfile:13:7"),
        "a missing `src` too: {stderr}"
    );

    // A key that is a directory is the wrong kind.
    std::fs::create_dir(dir.path().join("keys/admin.pub")).unwrap();
    let (code, _, stderr) = check(&[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("error[context-file-kind]: `keys/admin.pub` is a directory"),
        "{stderr}"
    );
    std::fs::remove_dir(dir.path().join("keys/admin.pub")).unwrap();

    // A key that links outside the context.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("admin.pub"), "ssh-ed25519 AAAA\n").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("admin.pub"),
        dir.path().join("keys/admin.pub"),
    )
    .unwrap();
    let (code, _, stderr) = check(&[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "error[path-escapes-context]: `keys/admin.pub` leads outside the build context"
        ),
        "{stderr}"
    );
    std::fs::remove_file(dir.path().join("keys/admin.pub")).unwrap();
    // A link inside the context is fine.
    std::fs::write(dir.path().join("keys/real.pub"), "ssh-ed25519 AAAA\n").unwrap();
    std::os::unix::fs::symlink("real.pub", dir.path().join("keys/admin.pub")).unwrap();
    assert_eq!(check(&[]).0, 0, "{}", check(&[]).2);

    // A bind mount's context source.
    let text = std::fs::read_to_string(&sysfile_path).unwrap();
    std::fs::write(
        &sysfile_path,
        format!("{text}\n[[run]]\nsh = \"true\"\nmounts = [{{ type = \"bind\", target = \"/src\", source = \"vendor\" }}]\n"),
    )
    .unwrap();
    let (code, _, stderr) = check(&[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`vendor` is not in the build context"),
        "{stderr}"
    );
    std::fs::create_dir(dir.path().join("vendor")).unwrap();
    assert_eq!(check(&[]).0, 0, "{}", check(&[]).2);
}

#[test]
fn explain_prints_a_rule_or_a_code() {
    let (code, stdout, _) = sysfile(&["explain", "UnpinnedBaseImage"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("## UnpinnedBaseImage (`unpinned-base-image`)"),
        "{stdout}"
    );
    assert!(stdout.contains("https://"), "{stdout}");
    let (code, stdout, _) = sysfile(&["explain", "context-file-missing"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("context-file-missing (an error)"),
        "{stdout}"
    );
    let (code, stdout, stderr) = sysfile(&["explain", "nope"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty() && stderr.contains("neither a lint rule nor a diagnostic code"));
}

#[test]
fn check_fails_with_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Sysfile");
    std::fs::write(&path, "[image]\nfrom = \"debian\"\ncolour = \"blue\"\n").unwrap();
    let (code, stdout, stderr) = sysfile(&["check", "-f", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("error[unknown-key]") && stderr.contains("Sysfile:3:1"),
        "{stderr}"
    );
}

#[test]
fn check_reads_includes_from_the_context() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Sysfile"),
        "include = [\"parts/users.toml\"]\n[image]\nfrom = \"debian\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("parts")).unwrap();
    std::fs::write(
        dir.path().join("parts/users.toml"),
        "[[users]]\nname = \"Bad Name\"\n",
    )
    .unwrap();
    let (code, _, stderr) = sysfile(&["check", "-f", dir.path().join("Sysfile").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("users.toml:2:"), "{stderr}");
    std::fs::write(
        dir.path().join("parts/users.toml"),
        "[[users]]\nname = \"admin\"\n",
    )
    .unwrap();
    let (code, _, stderr) = sysfile(&["check", "-f", dir.path().join("Sysfile").to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn llb_writes_a_definition_that_decodes() {
    let (code, _, stderr) = sysfile(&["llb", "-f", "examples/sshd/Sysfile", "--network", "host"]);
    assert_eq!(code, 0, "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_sysfile"))
        .args(["llb", "-f", "examples/sshd/Sysfile", "--network", "host"])
        .output()
        .unwrap();
    let def = sysfile::pb::llb::Definition::decode(out.stdout.as_slice()).expect("a pb.Definition");
    assert!(def.def.len() > 5);
    let dump = sysfile::llb::dump::render(&def).unwrap();
    assert!(
        dump.contains("[sysfile] install packages: openssh-server sudo"),
        "{dump}"
    );
    assert!(dump.contains("network HOST"));
}

#[test]
fn schema_is_json_schema_for_every_table() {
    let (code, stdout, _) = sysfile(&["schema"]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    for table in [
        "image", "args", "packages", "files", "users", "run", "services", "systemd", "config",
        "include",
    ] {
        assert!(
            schema["properties"].get(table).is_some(),
            "no {table} in the schema"
        );
    }
}

#[test]
fn llb_stamps_files_with_a_source_date_epoch_build_arg() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Sysfile");
    std::fs::write(&path, "[image]\nfrom = \"debian\"\n[args]\nSOURCE_DATE_EPOCH = \"\"\n[[files]]\ncontent = \"x\"\ndest = \"/etc/x\"\n").unwrap();
    let path = path.to_str().unwrap();
    let (_, plain, _) = sysfile(&["llb", "--dump", "-f", path]);
    let (code, stamped, stderr) = sysfile(&[
        "llb",
        "--dump",
        "-f",
        path,
        "--build-arg",
        "SOURCE_DATE_EPOCH=1700000000",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(plain, stamped, "the epoch changes the file ops");
    let (_, again, _) = sysfile(&[
        "llb",
        "--dump",
        "-f",
        path,
        "--build-arg",
        "SOURCE_DATE_EPOCH=1700000000",
    ]);
    assert_eq!(stamped, again);
}

#[test]
fn a_shell_script_in_argv_is_never_interpolated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Sysfile");
    std::fs::write(
        &path,
        "[image]\nfrom = \"debian\"\n[args]\nMSG = \"$(id)\"\n[[run]]\nargv = [\"/bin/sh\", \"-ec\", \"echo \\\"${MSG}\\\"\"]\n[[run]]\nargv = [\"echo\", \"${MSG}\"]\n",
    )
    .unwrap();
    let (code, dump, stderr) = sysfile(&["llb", "--dump", "-f", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    // The shell reads MSG from its environment; the exec form gets the value itself.
    assert!(
        dump.contains(r#"exec ["/bin/sh","-ec","echo \"${MSG}\""]"#),
        "{dump}"
    );
    assert!(dump.contains(r#"exec ["echo","$(id)"]"#), "{dump}");
    assert!(dump.contains("env MSG=$(id)"), "{dump}");
}

#[test]
fn names_sysfile_sets_itself_are_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Sysfile");
    std::fs::write(
        &path,
        "[image]\nfrom = \"debian\"\n[config]\nenv = { SYSTEMD_OFFLINE = \"1\" }\n",
    )
    .unwrap();
    let (code, _, stderr) = sysfile(&["check", "-f", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("error[reserved-env-name]") && stderr.contains("Sysfile:4:"),
        "{stderr}"
    );
}

#[test]
fn a_secret_can_belong_to_the_steps_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Sysfile");
    std::fs::write(
        &path,
        "[image]\nfrom = \"debian\"\n[[run]]\nuser = \"app\"\nsh = \"cat /run/secrets/token >/dev/null\"\nmounts = [{ type = \"secret\", id = \"token\", uid = 1000, gid = 1000 }]\n",
    )
    .unwrap();
    let (code, dump, stderr) = sysfile(&["llb", "--dump", "-f", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        dump.contains(
            "mount /run/secrets/token SECRET input=-1 output=-1 id=token uid=1000 gid=1000 mode=400"
        ),
        "{dump}"
    );
}

// ---- run --print, k8s and quadlet against a fake `podman` that serves hostile labels ----------

/// A directory with a fake `podman` on `PATH` that prints version 5.4.0 and, for
/// `image inspect`, the labels JSON it is given.
struct FakePodman {
    dir: tempfile::TempDir,
}

impl FakePodman {
    fn new(labels: &serde_json::Value) -> FakePodman {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("labels.json"), labels.to_string()).unwrap();
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in\n  version) echo 5.4.0 ;;\n  image) cat '{}' ;;\n  *) echo \"unexpected: $*\" >&2; exit 9 ;;\nesac\n",
            dir.path().join("labels.json").display()
        );
        let podman = dir.path().join("podman");
        std::fs::write(&podman, script).unwrap();
        std::fs::set_permissions(&podman, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakePodman { dir }
    }

    fn sysfile(&self, args: &[&str]) -> (i32, String, String) {
        let path = format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(env!("CARGO_BIN_EXE_sysfile"))
            .args(args)
            .env("PATH", path)
            .output()
            .expect("sysfile runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).expect("UTF-8 stdout"),
            String::from_utf8(out.stderr).expect("UTF-8 stderr"),
        )
    }
}

fn hostile_labels() -> serde_json::Value {
    serde_json::json!({
        "sysfile.systemd.boot": "true",
        "sysfile.systemd.version": "252\u{1b}[2J",
        "sysfile.runtime.stop-timeout": "30\n---\napiVersion: v1\nkind: Pod\nspec:\n  hostPID: true",
        "sysfile.runtime.tmpfs": "/run:exec,mode=755,\u{1b}]0;pwned\u{7};/run/lock;/tmp:size=99g;/x\u{2028}y;/host:rw,bind",
        "sysfile.health.cmd": "systemctl is-system-running --quiet\u{85}privileged: true",
        "sysfile.runtime.docker": "--privileged -v /:/host",
        "RUN": "podman run --privileged IMAGE"
    })
}

/// Nothing a terminal would act on: no control character but `\n`, no U+0085, U+2028, U+2029.
fn assert_terminal_safe(text: &str) {
    for c in text.chars() {
        assert!(
            c == '\n' || !(c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
            "{c:?} in:\n{text}"
        );
    }
}

#[test]
fn k8s_with_hostile_labels_is_one_document_and_warns_escaped() {
    let fake = FakePodman::new(&hostile_labels());
    let (code, stdout, stderr) = fake.sysfile(&["k8s", "--engine", "podman", "example/sshd"]);
    assert_eq!(code, 0, "{stderr}");
    assert_terminal_safe(&stdout);
    assert_terminal_safe(&stderr);
    assert!(stdout.is_ascii());
    let docs = yaml_rust2::YamlLoader::load_from_str(&stdout).unwrap();
    assert_eq!(docs.len(), 1, "{stdout}");
    assert_eq!(docs[0]["kind"].as_str(), Some("Pod"));
    assert_eq!(
        docs[0]["spec"]["terminationGracePeriodSeconds"].as_i64(),
        Some(30)
    );
    assert!(!stdout.contains("hostPID"), "{stdout}");
    assert_eq!(
        docs[0]["spec"]["containers"][0]["securityContext"]["privileged"].as_bool(),
        Some(false)
    );
    assert!(
        stderr.contains(r#"warning: label sysfile.runtime.stop-timeout: "30\n---\napiVersion: v1"#),
        "{stderr}"
    );
    assert!(stderr.contains(r"\u{1b}]0"), "{stderr}");
    assert!(stderr.contains(r"\u{2028}"), "{stderr}");
    assert!(stderr.contains(r"\u{85}"), "{stderr}");
}

#[test]
fn quadlet_with_hostile_labels_writes_only_validated_values() {
    let fake = FakePodman::new(&hostile_labels());
    let (code, stdout, stderr) = fake.sysfile(&["quadlet", "localhost/example/sshd:1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_terminal_safe(&stdout);
    assert_terminal_safe(&stderr);
    let keys: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .collect();
    assert_eq!(
        keys,
        [
            "Description=sysfile system container sshd",
            "Image=localhost/example/sshd:1",
            "PodmanArgs=--systemd=always",
            "Tmpfs=/host",
            "StopSignal=SIGRTMIN+3",
            "StopTimeout=30",
            "TimeoutStopSec=60",
            "WantedBy=default.target",
        ],
        "{stdout}"
    );
    assert!(
        stderr.contains("warning: label sysfile.health.cmd"),
        "{stderr}"
    );

    // --output-dir writes NAME.container.
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = fake.sysfile(&[
        "quadlet",
        "--name",
        "box",
        "--output-dir",
        out.path().to_str().unwrap(),
        "localhost/example/sshd:1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    let unit = std::fs::read_to_string(out.path().join("box.container")).unwrap();
    assert!(
        unit.contains("\n[Container]\nImage=localhost/example/sshd:1\n"),
        "{unit}"
    );
}

#[test]
fn quadlet_refuses_a_bad_name_or_reference_before_asking_the_engine() {
    let fake = FakePodman::new(&serde_json::json!({}));
    for args in [
        &["quadlet", "--name", "Bad\u{1b}[2J", "x"][..],
        &["quadlet", "x\n[Service]\nExecStartPre=/bin/id"][..],
    ] {
        let (code, stdout, stderr) = fake.sysfile(args);
        assert_eq!(code, 1, "{stderr}");
        assert!(stdout.is_empty());
        assert_terminal_safe(&stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

#[test]
fn run_print_with_hostile_labels_passes_no_label_through() {
    let fake = FakePodman::new(&hostile_labels());
    let (code, stdout, stderr) = fake.sysfile(&[
        "run",
        "--engine",
        "podman",
        "--print",
        "--name",
        "sd",
        "example/sshd",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_terminal_safe(&stdout);
    assert_terminal_safe(&stderr);
    // `/host:rw,bind` keeps only its path: an empty tmpfs at /host, not a bind of anything.
    assert_eq!(
        stdout,
        "podman run -d -t --systemd=always --stop-timeout 30 --name sd --tmpfs /host example/sshd\n"
    );
    assert!(
        stderr.contains("warning: label sysfile.runtime.tmpfs"),
        "{stderr}"
    );
    let (code, stdout, stderr) =
        fake.sysfile(&["run", "--engine", "podman", "--explain", "example/sshd"]);
    assert_eq!(code, 0, "{stderr}");
    assert_terminal_safe(&stdout);
    // Only the escaped warnings quote label values; no flag or reason does.
    for line in stdout.lines().filter(|l| !l.starts_with("warning: ")) {
        assert!(!line.contains("privileged"), "{line}");
    }
}

#[test]
fn run_force_cgroup_v1_is_accepted_and_has_no_effect() {
    let fake = FakePodman::new(&serde_json::json!({
        "sysfile.systemd.boot": "true",
        "sysfile.systemd.version": "257"
    }));
    let base = ["run", "--engine", "podman", "--print", "example/sshd"];
    let (code, plain, _) = fake.sysfile(&base);
    assert_eq!(code, 0);
    let mut forced = base.to_vec();
    forced.push("--force-cgroup-v1");
    let (code, stdout, stderr) = fake.sysfile(&forced);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, plain);
    assert!(
        stderr.contains("--force-cgroup-v1 has no effect"),
        "{stderr}"
    );
}

/// The manifests validate against Kubernetes' own schemas (PyPI `kubernetes-validate`, strict:
/// unknown fields fail) for every version `--kube-version` accepts. Skips loudly when the tool
/// is not installed, unless `SYSFILE_E2E=required`.
#[test]
fn k8s_manifests_validate_with_kubernetes_validate() {
    let probe = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        if std::env::var("SYSFILE_E2E").as_deref() == Ok("required") {
            panic!("kubernetes-validate is not installed (pip install kubernetes-validate)");
        }
        eprintln!(
            "=== SKIPPED: kubernetes-validate is not installed (pip install kubernetes-validate) ==="
        );
        return;
    }
    let fake = FakePodman::new(&serde_json::json!({
        "sysfile.systemd.boot": "true",
        "sysfile.systemd.version": "257",
        "sysfile.runtime.tmpfs": "/run:exec,mode=755;/run/lock;/tmp;/var/cache/app:size=512m",
        "sysfile.runtime.stop-timeout": "45",
        "sysfile.health.cmd": "s=$(systemctl is-system-running 2>/dev/null); [ \"$s\" = running ] || [ \"$s\" = degraded ]"
    }));
    let dir = tempfile::tempdir().unwrap();
    for minor in 25..=37 {
        let version = format!("1.{minor}");
        let mut files = Vec::new();
        let mut variants: Vec<Vec<&str>> = vec![
            vec![],
            vec!["--deployment", "--replicas", "3"],
            vec!["--userns", "on"],
            vec!["--userns", "off"],
        ];
        if minor >= 33 {
            variants.push(vec!["--stop-signal"]);
            variants.push(vec!["--deployment", "--stop-signal"]);
        }
        for (i, extra) in variants.iter().enumerate() {
            let mut args = vec!["k8s", "--engine", "podman", "--kube-version", &version];
            args.extend(extra);
            args.push("example/sshd:latest");
            let (code, stdout, stderr) = fake.sysfile(&args);
            assert_eq!(code, 0, "{args:?}: {stderr}");
            let file = dir.path().join(format!("{minor}-{i}.yaml"));
            std::fs::write(&file, stdout).unwrap();
            files.push(file);
        }
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "-k", &format!("{version}.0")])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Kubernetes {version}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And a field a version lacks fails: stopSignal is unknown to 1.32.
    let (code, _, stderr) = fake.sysfile(&[
        "k8s",
        "--engine",
        "podman",
        "--kube-version",
        "1.32",
        "--stop-signal",
        "x",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("needs Kubernetes 1.33"), "{stderr}");
}

/// A context with a Sysfile including `inc.toml`, which `make` creates; the result of `check`.
fn check_with_include(make: impl FnOnce(&std::path::Path)) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Sysfile"),
        "include = [\"inc.toml\"]\n[image]\nfrom = \"debian\"\n",
    )
    .unwrap();
    make(&dir.path().join("inc.toml"));
    let (code, _, stderr) = sysfile(&["check", "-f", dir.path().join("Sysfile").to_str().unwrap()]);
    (code, stderr)
}

#[test]
fn includes_never_leave_the_context_or_read_special_files() {
    // A symbolic link out of the context: the secrets of the environment never show.
    for target in ["/proc/self/environ", "/etc/passwd"] {
        let (code, stderr) = check_with_include(|inc| {
            std::os::unix::fs::symlink(target, inc).unwrap();
        });
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("error[unreadable-include]")
                && stderr.contains("outside the build context")
                && stderr.contains("Sysfile:1:12"),
            "{stderr}"
        );
        assert!(!stderr.contains("root:"), "{stderr}");
    }
    // A device (inside the context through a link chain is the same as a direct one).
    let (code, stderr) = check_with_include(|inc| {
        let dev = inc.with_file_name("zero");
        std::os::unix::fs::symlink("/dev/zero", &dev).unwrap();
        std::os::unix::fs::symlink("zero", inc).unwrap();
    });
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("error[unreadable-include]"), "{stderr}");
    // A FIFO would block forever.
    let (code, stderr) = check_with_include(|inc| {
        let status = Command::new("mkfifo").arg(inc).status().unwrap();
        assert!(status.success());
    });
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    // Too large.
    let (code, stderr) = check_with_include(|inc| {
        let file = std::fs::File::create(inc).unwrap();
        file.set_len(9 << 20).unwrap();
    });
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("larger than 8 MiB"), "{stderr}");
    // Not UTF-8: said so, not "not found".
    let (code, stderr) = check_with_include(|inc| {
        std::fs::write(inc, b"[config]\nworkdir = \"/\xff\"\n").unwrap();
    });
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("is not UTF-8 text (invalid byte at line 2, column 13)")
            && !stderr.contains("not found"),
        "{stderr}"
    );
    // A link inside the context is fine.
    let (code, stderr) = check_with_include(|inc| {
        let real = inc.with_file_name("real.toml");
        std::fs::write(&real, "[config]\nworkdir = \"/srv\"\n").unwrap();
        std::os::unix::fs::symlink("real.toml", inc).unwrap();
    });
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn binary_and_special_spec_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Sysfile");
    std::fs::write(&path, b"[image]\nfrom = \"deb\xffian\"\n").unwrap();
    for command in ["check", "llb"] {
        let (code, stdout, stderr) = sysfile(&[command, "-f", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains("error[not-utf8]") && stderr.contains("Sysfile:2:12"),
            "{stderr}"
        );
    }
    // Not a regular file: an unreadable path (exit 2), without hanging or reading forever.
    for special in ["/dev/zero", "/proc/self"] {
        let (code, _, stderr) = sysfile(&["check", "-f", special]);
        assert_eq!(code, 2, "{special}: {stderr}");
    }
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (code, _, stderr) = sysfile(&["check", "-f", fifo.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[test]
fn check_and_llb_agree_on_source_date_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Sysfile");
    std::fs::write(
        &path,
        "[image]\nfrom = \"debian\"\n[args]\nSOURCE_DATE_EPOCH = \"\"\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    for value in ["abc", "-1", "1.5", "99999999999999999999"] {
        let arg = format!("SOURCE_DATE_EPOCH={value}");
        for command in ["check", "llb"] {
            let (code, _, stderr) = sysfile(&[command, "-f", path, "--build-arg", &arg]);
            assert_eq!(code, 1, "{command} {value}: {stderr}");
            assert!(stderr.contains("Sysfile:4:1"), "{stderr}");
        }
    }
    let (code, _, stderr) = sysfile(&["check", "-f", path, "--build-arg", "SOURCE_DATE_EPOCH=0"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn llb_checks_the_platform() {
    for bad in [
        "LINUX/x",
        "linux",
        "linux/amd64/v8/x",
        "linux/ amd64",
        "linux/",
    ] {
        let (code, stdout, stderr) =
            sysfile(&["llb", "-f", "examples/sshd/Sysfile", "--platform", bad]);
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(
            stdout.is_empty() && stderr.contains("is not a platform"),
            "{stderr}"
        );
    }
    let (code, _, stderr) = sysfile(&[
        "llb",
        "-f",
        "examples/sshd/Sysfile",
        "--platform",
        "linux/arm64/v8",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn many_errors_on_one_long_line_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Sysfile");
    let line = "${X}".repeat(8000);
    std::fs::write(
        &path,
        format!("[image]\nfrom = \"debian\"\n[config]\nworkdir = \"/{line}\"\n"),
    )
    .unwrap();
    let (code, _, stderr) = sysfile(&["check", "-f", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.matches("error[undeclared-arg]").count(),
        5,
        "at most 5 per line"
    );
    assert!(
        stderr.contains("error[more-diagnostics]: 7995 more problems in this file"),
        "{}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
    // Each shown error quotes the 32 KB line once: the output stays small.
    assert!(stderr.len() < 6 * 40_000, "{} bytes", stderr.len());
}

#[test]
fn lint_warnings_are_capped_and_found_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Sysfile");
    let env: Vec<String> = (0..10_000)
        .map(|i| format!("API_TOKEN_{i} = \"x\""))
        .collect();
    std::fs::write(
        &path,
        format!(
            "[image]\nfrom = \"debian\"\n[config]\nenv = {{ {} }}\n",
            env.join(", ")
        ),
    )
    .unwrap();
    let (code, _, stderr) = sysfile(&["check", "-f", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{}", &stderr[stderr.len().saturating_sub(2000)..]);
    assert_eq!(stderr.matches("warning[secret-in-env]").count(), 5);
    assert!(
        stderr.contains("warning[more-diagnostics]: 9995 more warnings"),
        "{}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
}
