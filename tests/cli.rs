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

#[test]
fn check_accepts_the_example_and_shows_lint_warnings() {
    let (code, _, stderr) = sysfile(&["check", "-f", "examples/sshd/Sysfile"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning[unpinned-base-image]"), "{stderr}");
    assert!(stderr.contains("Sysfile: ok"), "{stderr}");
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
