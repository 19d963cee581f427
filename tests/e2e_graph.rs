//! The dependency-shaped build against the linear one on the newest standalone buildkitd (the
//! matrix's `buildctl-registry` builder: Docker 26's builder has no merge and diff ops, so it
//! always builds the line, leaf files at its end): the same spec built both ways
//! (`BUILDKIT_SYSFILE_LINEAR=1` forces the line), and as the plain line of the declared order
//! (`BUILDKIT_SYSFILE_LINEAR=declared`: no file moved), must give the same root filesystem,
//! compared file by file — paths, types, modes, owners, contents, link targets and extended
//! attributes, not times. Also: a changed leaf file re-runs neither the units step nor any
//! `[[run]]` (nor a check whose `reads` does not list it), a `check = true` step sees the spec's
//! filesystem and leaves nothing in it, and a failing check fails the build in both shapes and on
//! Docker 26.
//!
//! Same rules as `tests/e2e_matrix.rs` (shared harness in `testkit/`): without an engine each
//! test prints `=== SKIPPED … ===` and passes, unless `SYSFILE_E2E=required`.
//!
//! Run: `SYSFILE_E2E=required cargo test --test e2e_graph -- --test-threads=1 --nocapture`.

use sysfile_testkit::engines;
use sysfile_testkit::harness;

use engines::*;
use harness::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

const LINEAR: &[(&str, &str)] = &[("BUILDKIT_SYSFILE_LINEAR", "1")];
/// The plain line: every step where the spec declares it.
const DECLARED: &[(&str, &str)] = &[("BUILDKIT_SYSFILE_LINEAR", "declared")];
/// The progress name of the op that makes the moved files' directories early.
const EARLY_DIRECTORIES: &str = "[sysfile] directories of the files copied later";
/// The progress name of a leaf file's diff, which joins the image (dependency-shaped builds only).
const JOIN: &str = "[sysfile] a file no later step reads";
/// The progress name of the diff of the user steps run beside the files (dependency-shaped
/// builds of a spec whose files neither read nor write what the users write).
const USERS_JOIN: &str = "[sysfile] the users, made beside the files";
/// The builder with merge and diff ops.
const SHAPED: Builder = Builder::Buildctl(FrontendFrom::Registry);

/// `builder` with base and frontend images ready, or `None` (skip).
fn setup(test: &str, builder: Builder) -> Option<Builder> {
    let engine = Engine::detect(test)?;
    engine.require_base_image();
    if !builder.detect(test) {
        return None;
    }
    builder.prepare_frontend();
    Some(builder)
}

/// A copy of `dir` whose Sysfile's `# syntax=` line names the frontend under test.
fn copy_with_syntax(dir: &Path) -> tempfile::TempDir {
    let ctx = tempdir();
    copy_tree(dir, ctx.path());
    let file = ctx.path().join("Sysfile");
    let text = std::fs::read_to_string(&file).expect("a Sysfile");
    let (first, rest) = text.split_once('\n').expect("a multi-line Sysfile");
    assert!(first.starts_with("# syntax="), "{}", dir.display());
    std::fs::write(&file, format!("# syntax={}\n{rest}", frontend_tag())).unwrap();
    ctx
}

/// One entry of a root filesystem, without its times.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: String,
    mode: u32,
    uid: u64,
    gid: u64,
    /// Symlink or hard-link target.
    link: Option<String>,
    sha256: Option<String>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// The root filesystem of `image`: `docker create` and `docker export`, read entry by entry.
fn root_filesystem(image: &str) -> BTreeMap<String, Entry> {
    let created = docker(&["create", image]);
    assert!(created.ok(), "docker create {image}: {}", created.stderr);
    let id = created.stdout.trim().to_string();
    let export = Command::new(DOCKER)
        .args(["export", &id])
        .stdin(Stdio::null())
        .output()
        .expect("docker export");
    docker(&["rm", "-f", &id]);
    assert!(export.status.success(), "docker export {image}");
    let mut archive = tar::Archive::new(export.stdout.as_slice());
    let mut entries = BTreeMap::new();
    for entry in archive.entries().expect("a tar stream") {
        let mut entry = entry.expect("a tar entry");
        let header = entry.header().clone();
        let path = entry.path().expect("a path").display().to_string();
        let mut xattrs = BTreeMap::new();
        if let Ok(Some(extensions)) = entry.pax_extensions() {
            for extension in extensions.flatten() {
                if let Some(name) = extension
                    .key()
                    .ok()
                    .and_then(|k| k.strip_prefix("SCHILY.xattr."))
                {
                    xattrs.insert(name.to_string(), extension.value_bytes().to_vec());
                }
            }
        }
        let kind = format!("{:?}", header.entry_type());
        let sha256 = header.entry_type().is_file().then(|| {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).expect("file data");
            hex::encode(Sha256::digest(&data))
        });
        let link = entry
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.display().to_string());
        entries.insert(
            path.trim_end_matches('/').to_string(),
            Entry {
                kind,
                mode: header.mode().expect("a mode"),
                uid: header.uid().expect("a uid"),
                gid: header.gid().expect("a gid"),
                link,
                sha256,
                xattrs,
            },
        );
    }
    entries
}

/// The `created_by` of the newest history entry of `image`.
fn newest_history(image: &str) -> String {
    let r = docker(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", image]);
    assert!(r.ok(), "docker history {image}: {}", r.stderr);
    r.stdout.lines().next().unwrap_or_default().to_string()
}

/// Every difference between two root filesystems, one line each.
fn differences(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, entry) in a {
        match b.get(path) {
            None => out.push(format!("only in the dependency-shaped build: {path}")),
            Some(other) if other != entry => {
                out.push(format!("{path}: shaped {entry:?} / linear {other:?}"))
            }
            Some(_) => {}
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("only in the linear build: {path}"));
    }
    out
}

/// Builds `dir` both ways and compares the root filesystems; returns the shaped one.
/// `users_beside`: whether the shaped build runs the user steps beside the files.
fn assert_same_filesystem(test: &str, dir: &Path, users_beside: bool) -> BTreeMap<String, Entry> {
    let Some(builder) = setup(test, SHAPED) else {
        return BTreeMap::new();
    };
    let ctx = copy_with_syntax(dir);
    let file = ctx.path().join("Sysfile");
    let shaped = builder.build(test, ctx.path(), &file, &[]);
    shaped.assert_ok("the dependency-shaped build");
    // The history follows the layers: the leaf files' come last in both shapes (merged on top,
    // or applied at the end of the line); only the dependency-shaped build has the merge.
    let linear = builder.build(test, ctx.path(), &file, LINEAR);
    linear.assert_ok("the linear build");
    for (shape, build, merged) in [("shaped", &shaped, true), ("linear", &linear, false)] {
        let newest = newest_history(build.tag());
        assert!(
            newest.starts_with("[sysfile] copy ") || newest.starts_with("[sysfile] write "),
            "{test}, {shape}: the build has leaf files, last: {newest}"
        );
        assert_eq!(
            build.output.contains(JOIN),
            merged,
            "{test}, {shape}: a merge of the leaf files only where asked for"
        );
        assert_eq!(
            build.output.contains(USERS_JOIN),
            merged && users_beside,
            "{test}, {shape}: the users beside the files only where asked for and allowed"
        );
    }
    // And the plain line, every step where the spec declares it: what both must equal.
    let declared = builder.build(test, ctx.path(), &file, DECLARED);
    declared.assert_ok("the build in the declared order");
    assert!(
        !declared.output.contains(EARLY_DIRECTORIES),
        "{test}: the declared order moves no file"
    );
    let a = root_filesystem(shaped.tag());
    assert!(
        a.len() > 1000,
        "{test}: a whole root filesystem ({})",
        a.len()
    );
    for (shape, other) in [("linear", &linear), ("declared-order", &declared)] {
        let diff = differences(&a, &root_filesystem(other.tag()));
        assert!(
            diff.is_empty(),
            "{test}: the dependency-shaped and the {shape} build differ in {} entries:\n{}",
            diff.len(),
            diff.join("\n")
        );
    }
    a
}

#[test]
fn webapp_is_the_same_file_by_file_in_both_shapes() {
    // Its user runs beside the files: nothing there is owned by a name or under /home.
    assert_same_filesystem("graph-webapp", &repo_root().join("examples/webapp"), true);
}

#[test]
fn webstack_is_the_same_file_by_file_in_both_shapes() {
    assert_same_filesystem(
        "graph-webstack",
        &repo_root().join("examples/webstack"),
        false,
    );
}

#[test]
fn the_fixture_built_to_break_the_rule_is_the_same_in_both_shapes() {
    let fixture = repo_root().join("tests/fixtures/graph/ctx");
    // Its user sets a uid, and files name it as their owner: the users stay in the chain.
    let root = assert_same_filesystem("graph-fixture", &fixture, false);
    if root.is_empty() {
        return;
    }
    // What the fixture is about, so a regression cannot pass by building something else.
    let entry = |path: &str| {
        root.get(path)
            .unwrap_or_else(|| panic!("{path} is not in the image"))
    };
    assert_eq!(entry("opt/app/state").mode & 0o7777, 0o700);
    assert_eq!(entry("srv/data").mode & 0o7777, 0o700);
    assert_eq!(entry("srv/deep/new/dir/leaf.txt").uid, 1500);
    assert_eq!(entry("srv/site/index.html").uid, 1500);
    assert!(root.contains_key("srv/deep/new/beside.txt"));
    assert!(
        !root.contains_key("check-was-here"),
        "a check's changes are discarded"
    );
}

/// A leaf file changed: its copy and the checks run again, never the units step or a
/// `[[run]]`, in every shape: joined by merge and diff on the newest buildkitd, and as a line
/// with the leaves at its end (forced there, and on Docker 26, whose builder has no merge and
/// diff ops). Joined, the other leaf stays cached too; at the end of the line a later leaf's
/// copy runs again (it is applied on the changed one).
/// Builds `<ctx>/Sysfile` again after a change (`what`, for the messages): the names of the steps
/// that ran.
fn rebuild(
    builder: Builder,
    test: &str,
    ctx: &Path,
    extra: &[(&str, &str)],
    what: &str,
) -> Vec<String> {
    let changed = builder.build(test, ctx, &ctx.join("Sysfile"), extra);
    changed.assert_ok(&format!("{what}: the build after the change"));
    let vertices = parse_plain_progress(&changed.output);
    let executed: Vec<String> = executed_steps(&vertices)
        .iter()
        .map(|v| v.name.clone())
        .collect();
    eprintln!(
        "[e2e] {what}: {:.2}s, executed {executed:?}",
        changed.elapsed.as_secs_f64()
    );
    executed
}

/// Appends `line` to the text file at `path`.
fn append_line(path: &Path, line: &str) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_leaf_or_unit_file_change_reruns_only_what_reads_it() {
    let test = "graph-leaf-change";
    let (Some(shaped), Some(docker)) = (setup(test, SHAPED), setup(test, Builder::Docker26)) else {
        return;
    };
    let shapes = [
        ("dependency-shaped", shaped, &[][..], true),
        ("linear", shaped, LINEAR, false),
        ("Docker 26 (no merge and diff ops)", docker, &[][..], false),
    ];
    for (shape, builder, extra, other_leaf_cached) in shapes {
        let ctx = copy_with_syntax(&repo_root().join("examples/webapp"));
        let file = ctx.path().join("Sysfile");
        builder
            .build(test, ctx.path(), &file, extra)
            .assert_ok(&format!("{shape}: first build"));
        append_line(
            &ctx.path().join("site/index.html"),
            &format!("<!-- {} -->", unique_name(test)),
        );
        let executed = rebuild(
            builder,
            test,
            ctx.path(),
            extra,
            &format!("leaf change, {shape}"),
        );
        assert!(
            executed.iter().any(|n| n.contains("copy site/index.html")),
            "{shape}: the changed file is copied again: {executed:?}"
        );
        let mut cached = vec!["enable units", "run: drop the default nginx site"];
        if other_leaf_cached {
            // Another leaf file: each is joined on its own.
            cached.push("write /usr/local/bin/hello-report");
        }
        for step in cached {
            assert!(
                !executed.iter().any(|n| n.contains(step)),
                "{shape}: `{step}` stays cached when a leaf file changes: {executed:?}"
            );
        }
        assert!(
            !executed.iter().any(|n| n.contains("check: nginx -t")),
            "{shape}: the check, which reads only /etc/nginx, does not see the page and stays cached: {executed:?}"
        );

        // The nginx site changed: a leaf file the check lists, so the check runs again on the
        // new filesystem, and still nothing in the chain does.
        append_line(
            &ctx.path().join("nginx/hello.conf"),
            &format!("# {}", unique_name(test)),
        );
        let executed = rebuild(
            builder,
            test,
            ctx.path(),
            extra,
            &format!("site change, {shape}"),
        );
        assert!(
            executed.iter().any(|n| n.contains("check: nginx -t")),
            "{shape}: the check runs again on the new site: {executed:?}"
        );
        for step in ["enable units", "run: drop the default nginx site"] {
            assert!(
                !executed.iter().any(|n| n.contains(step)),
                "{shape}: `{step}` stays cached when the site changes: {executed:?}"
            );
        }

        // A unit file changed: it is copied after the `[[run]]` (which does not read it), so
        // the units step runs again and the run does not.
        let spec = std::fs::read_to_string(&file).unwrap();
        let marked = format!(
            "Environment=PYTHONUNBUFFERED=1 SYSFILE_MARK={}\n",
            unique_name(test).replace('-', "_")
        );
        let changed_spec = spec.replace("Environment=PYTHONUNBUFFERED=1\n", &marked);
        assert_ne!(
            spec, changed_spec,
            "examples/webapp's app unit sets PYTHONUNBUFFERED"
        );
        std::fs::write(&file, changed_spec).unwrap();
        let executed = rebuild(
            builder,
            test,
            ctx.path(),
            extra,
            &format!("unit change, {shape}"),
        );
        assert!(
            executed.iter().any(|n| n.contains("enable units")),
            "{shape}: the units step runs again: {executed:?}"
        );
        assert!(
            !executed
                .iter()
                .any(|n| n.contains("run: drop the default nginx site")),
            "{shape}: the run that does not read the unit stays cached: {executed:?}"
        );
    }
}

#[test]
fn a_failing_check_fails_the_build_in_both_shapes() {
    let test = "graph-failing-check";
    let (Some(shaped), Some(docker)) = (setup(test, SHAPED), setup(test, Builder::Docker26)) else {
        return;
    };
    let ctx = tempdir();
    std::fs::write(
        ctx.path().join("Sysfile"),
        format!(
            "# syntax={}\n[image]\nfrom = \"{BASE_IMAGE}\"\n[[files]]\ndest = \"/etc/app.conf\"\ncontent = \"broken\\n\"\n[[run]]\nname = \"app check\"\nsh = \"echo sysfile-check-ran-{}; grep -q good /etc/app.conf\"\ncheck = true\n",
            frontend_tag(),
            std::process::id()
        ),
    )
    .unwrap();
    let file = ctx.path().join("Sysfile");
    let marker = format!("sysfile-check-ran-{}", std::process::id());
    let shapes = [
        ("dependency-shaped", shaped, &[][..]),
        ("linear", shaped, LINEAR),
        ("Docker 26 (no merge and diff ops)", docker, &[][..]),
    ];
    for (shape, builder, extra) in shapes {
        let build = builder.build(test, ctx.path(), &file, extra);
        build.assert_failed(&format!("{shape}: a failing check"));
        assert!(
            build.output.contains(&marker),
            "{shape}: the check ran (its output is in the progress):\n{}",
            tail(&build.output, 40)
        );
        assert!(
            build.output.contains("app check"),
            "{shape}: the error names the check:\n{}",
            tail(&build.output, 20)
        );
    }
    // A passing check: the build succeeds, and the check really ran on the spec's files.
    std::fs::write(
        ctx.path().join("Sysfile"),
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("broken", "good"),
    )
    .unwrap();
    for (shape, builder, extra) in shapes {
        let build = builder.build(test, ctx.path(), &file, extra);
        build.assert_ok(&format!("{shape}: a passing check"));
        // The leaf file comes last in every shape, merged on top only where the daemon has merge
        // and diff ops and no line is asked for: Docker 26's builder has not (docs/spec.md).
        let newest = newest_history(build.tag());
        assert_eq!(newest, "[sysfile] write /etc/app.conf", "{shape}");
        assert_eq!(
            build.output.contains(JOIN),
            shape == "dependency-shaped",
            "{shape}: the merge of the leaf files"
        );
    }
}
