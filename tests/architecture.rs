//! The import graph of `src/` against ARCHITECTURE.md: no circle, no upward import, no
//! dependency a module is not allowed, and every module on the code map.
//!
//! The graph is read from the source text: every `crate::x` path (including the items of
//! `use crate::{x, y::z}` groups) and every `super::` path that leaves its top-level module.
//! Comments and test modules (`#[cfg(test)] mod tests` and `tests.rs` files) are left out:
//! tests may use any stage to build their inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module: its layer, and the modules it may import (all in lower layers).
/// ARCHITECTURE.md's "Dependencies" table says the same; a test holds the two together.
const MODULES: &[(&str, u32, &[&str])] = &[
    ("pb", 0, &[]),
    ("diag", 0, &[]),
    ("network", 0, &[]),
    ("platform", 0, &[]),
    ("contract", 0, &[]),
    ("reference", 0, &[]),
    ("report", 0, &[]),
    ("model", 1, &["contract", "diag", "network"]),
    ("source_range", 1, &["diag"]),
    ("audit", 1, &["diag"]),
    ("llb", 1, &["pb", "network", "platform"]),
    ("spec", 2, &["diag", "model", "platform", "reference"]),
    ("distro", 2, &["model"]),
    ("lint", 2, &["diag", "model"]),
    ("plan", 3, &["diag", "distro", "model", "report"]),
    ("outline", 3, &["diag", "lint", "model", "source_range"]),
    (
        "lower",
        4,
        &["diag", "llb", "model", "pb", "plan", "reference", "report"],
    ),
    ("image", 4, &["contract", "model", "plan", "report"]),
    ("verify", 4, &["audit", "diag", "model", "plan", "report"]),
    (
        "compile",
        5,
        &[
            "diag",
            "distro",
            "image",
            "lower",
            "model",
            "pb",
            "plan",
            "reference",
            "report",
        ],
    ),
    (
        "gateway",
        5,
        &[
            "diag",
            "lower",
            "model",
            "network",
            "pb",
            "platform",
            "reference",
            "source_range",
        ],
    ),
    ("runtime", 1, &["contract", "reference"]),
    (
        "frontend",
        6,
        &[
            "compile",
            "diag",
            "distro",
            "gateway",
            "image",
            "lint",
            "llb",
            "lower",
            "model",
            "outline",
            "pb",
            "plan",
            "platform",
            "reference",
            "report",
            "spec",
            "verify",
        ],
    ),
    (
        "cli",
        7,
        &[
            "compile", "diag", "distro", "frontend", "lint", "llb", "lower", "model", "network",
            "runtime", "spec",
        ],
    ),
    (
        "fuzzing",
        7,
        &[
            "compile",
            "diag",
            "distro",
            "gateway",
            "image",
            "lint",
            "llb",
            "lower",
            "outline",
            "plan",
            "reference",
            "runtime",
            "spec",
        ],
    ),
];

/// The path of a source file as a module path (`src/gateway/mod.rs` is `["gateway"]`).
fn module_path(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix("src").expect("under src/");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text that counts: no test module, no comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every path after `prefix` (`x` of `crate::x::…`, each item of
/// `crate::{x, y::z}`).
fn segments_after(code: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            let mut ident = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !ident.is_empty() {
                            out.push((start, std::mem::take(&mut ident)));
                        }
                        item_start = true;
                    }
                    c if item_start && (c.is_alphanumeric() || c == '_') => ident.push(c),
                    _ if item_start && !ident.is_empty() => {
                        out.push((start, std::mem::take(&mut ident)));
                        item_start = false;
                    }
                    _ => {}
                }
            }
            if !ident.is_empty() {
                out.push((start, ident));
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                out.push((start, ident));
            }
        }
    }
    out
}

/// Edges between modules: `(from, to)` → the files that make it.
type Graph = BTreeMap<(String, String), BTreeSet<String>>;

/// The top-level graph (edges between crate modules) and each folder module's own graph
/// (edges between its submodules, keyed by the folder).
fn graphs(root: &Path) -> (Graph, BTreeMap<String, Graph>) {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut top = Graph::new();
    let mut inner: BTreeMap<String, Graph> = BTreeMap::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .expect("under the root")
            .to_path_buf();
        let path = module_path(&relative);
        if path.is_empty() || path == ["lib"] || path == ["main"] {
            continue;
        }
        if path.last().is_some_and(|p| p == "tests") {
            continue;
        }
        let text = code(&std::fs::read_to_string(&file).expect("readable source"));
        let name = relative.display().to_string();
        let from = path[0].clone();
        let mut targets: Vec<Vec<String>> = segments_after(&text, "crate::")
            .into_iter()
            .map(|(_, t)| vec![t])
            .collect();
        // `super::` from a file at depth d names the module d-1 levels up (a `mod.rs` is one
        // level less deep than its path suggests).
        for ups in (1..=4).rev() {
            let prefix = "super::".repeat(ups);
            for (_, t) in segments_after(&text, &prefix) {
                if t == "super" || ups > path.len() {
                    continue;
                }
                let mut target: Vec<String> = path[..path.len() - ups].to_vec();
                target.push(t);
                targets.push(target);
            }
        }
        for target in targets {
            if target[0] != from {
                top.entry((from.clone(), target[0].clone()))
                    .or_default()
                    .insert(name.clone());
            } else if path.len() >= 2 && target.len() >= 2 && target[1] != path[1] {
                // Within one folder module: between its submodules (items of its `mod.rs`,
                // the parent, are not a submodule).
                let is_submodule = root
                    .join("src")
                    .join(&from)
                    .join(format!("{}.rs", target[1]))
                    .exists()
                    || root.join("src").join(&from).join(&target[1]).is_dir();
                if is_submodule {
                    inner
                        .entry(from.clone())
                        .or_default()
                        .entry((path[1].clone(), target[1].clone()))
                        .or_default()
                        .insert(name.clone());
                }
            }
        }
    }
    (top, inner)
}

/// A circle in `graph`, as the modules along it, if there is one.
fn find_circle(graph: &Graph) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in graph.keys() {
        next.entry(from).or_default().push(to);
    }
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut circle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            circle.push(node.to_string());
            return Some(circle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for to in next.get(node).into_iter().flatten() {
            if let Some(circle) = visit(to, next, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in next.keys() {
        if let Some(circle) = visit(node, &next, &mut Vec::new(), &mut done) {
            return Some(circle);
        }
    }
    None
}

/// Every violation of the rules in the tree at `root`, as sentences.
fn violations(root: &Path) -> Vec<String> {
    let allowed: BTreeMap<&str, (u32, BTreeSet<&str>)> = MODULES
        .iter()
        .map(|(name, layer, deps)| (*name, (*layer, deps.iter().copied().collect())))
        .collect();
    let (top, inner) = graphs(root);
    let mut out = Vec::new();
    for ((from, to), files) in &top {
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        let Some((layer, deps)) = allowed.get(from.as_str()) else {
            out.push(format!("`{from}` is not in the module list ({files:?})"));
            continue;
        };
        let Some((to_layer, _)) = allowed.get(to.as_str()) else {
            out.push(format!(
                "`{from}` imports `{to}`, which is no module of the list ({files:?})"
            ));
            continue;
        };
        if to_layer >= layer {
            out.push(format!(
                "`{from}` (layer {layer}) imports `{to}` (layer {to_layer}): an upward import ({files:?})"
            ));
        }
        if !deps.contains(to.as_str()) {
            out.push(format!(
                "`{from}` imports `{to}`, which is not in its allowed list ({files:?})"
            ));
        }
    }
    // The table is true both ways: nothing is allowed that is not used.
    for (name, (_, deps)) in &allowed {
        for dep in deps {
            if !top.contains_key(&(name.to_string(), dep.to_string())) {
                out.push(format!(
                    "`{name}` may import `{dep}` but does not: drop it from the list"
                ));
            }
        }
    }
    if let Some(circle) = find_circle(&top) {
        out.push(format!("a circle: {}", circle.join(" → ")));
    }
    for (module, graph) in &inner {
        if let Some(circle) = find_circle(graph) {
            out.push(format!(
                "a circle inside `{module}`: {}",
                circle.join(" → ")
            ));
        }
    }
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_import_graph_has_no_circle_no_upward_arrow_and_only_allowed_arrows() {
    let found = violations(&root());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_allowed_lists_are_those_of_architecture_md() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    // The "Dependencies" table: `| `module` | layer | `a`, `b` |`.
    let mut documented: BTreeMap<String, (u32, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [module, layer, deps] = cells.as_slice() else {
            continue;
        };
        let deps: BTreeSet<String> = deps
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_string())
            .filter(|d| !d.is_empty() && d != "—")
            .collect();
        documented.insert(
            module.trim_matches('`').to_string(),
            (layer.parse().expect("a layer number"), deps),
        );
    }
    let listed: BTreeMap<String, (u32, BTreeSet<String>)> = MODULES
        .iter()
        .map(|(name, layer, deps)| {
            (
                name.to_string(),
                (*layer, deps.iter().map(|d| d.to_string()).collect()),
            )
        })
        .collect();
    assert_eq!(documented, listed);
}

#[test]
fn every_module_is_on_the_code_map() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let code_map = text
        .split("## Code map")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a code map section");
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut missing = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root()).expect("under the root");
        let path = module_path(relative);
        if path.is_empty() || path == ["lib"] || path == ["main"] {
            continue;
        }
        if path.last().is_some_and(|p| p == "tests") {
            continue;
        }
        let shown = relative.display().to_string();
        // A folder module's files are on the map through the folder or one by one.
        let on_map = code_map.contains(&format!("`{shown}`"))
            || (relative.components().count() > 2
                && code_map.contains(&format!("`src/{}/`", path[0])));
        if !on_map {
            missing.push(shown);
        }
    }
    assert!(
        missing.is_empty(),
        "not on ARCHITECTURE.md's code map: {missing:?}"
    );
    for (name, _, _) in MODULES {
        assert!(
            code_map.contains(&format!("`src/{name}.rs`"))
                || code_map.contains(&format!("`src/{name}/`")),
            "`{name}` is in the module list but not on the code map"
        );
    }
}

/// Fails if the tree at `dir` has any violation.
fn assert_clean(dir: &Path) {
    let found = violations(dir);
    assert!(found.is_empty(), "{found:?}");
}

/// Fails unless the tree at `dir` has a violation that mentions `needle`.
fn assert_found(dir: &Path, needle: &str) {
    let found = violations(dir);
    assert!(
        found.iter().any(|v| v.contains(needle)),
        "{needle}: {found:?}"
    );
}

/// The checker itself: planted violations are found, and only they.
#[test]
fn a_planted_violation_is_found() {
    let dir = std::env::temp_dir().join(format!("sysfile-architecture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).expect("a scratch tree");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join("src").join(name), text).expect("writable");
    };
    // Every module of the list, importing exactly what it may: a clean tree.
    for (name, _, deps) in MODULES {
        let uses: String = deps.iter().map(|d| format!("use crate::{d};\n")).collect();
        write(&format!("{name}.rs"), &uses);
    }
    assert_clean(&dir);
    // `use` groups count item by item.
    write("model.rs", "use crate::{contract, diag::Span, network};\n");
    assert_clean(&dir);
    // `model` reaching up into `plan`: upward, not allowed, and a circle.
    write(
        "model.rs",
        "use crate::{contract, diag, network};\nfn f() { crate::plan::plan(); }\n",
    );
    assert_found(&dir, "upward");
    assert_found(&dir, "not in its allowed list");
    assert_found(&dir, "a circle: ");
    // In a comment or a test module it does not count.
    write(
        "model.rs",
        "use crate::{contract, diag, network};\n// crate::plan::plan\n#[cfg(test)]\nmod tests {\n    use crate::plan;\n}\n",
    );
    assert_clean(&dir);
    // An allowed import that is no longer used is reported: the table must stay true.
    write("lint.rs", "use crate::diag;\n");
    assert_found(&dir, "`lint` may import `model` but does not");
    write("lint.rs", "use crate::{diag, model};\n");
    // `super::` out of a folder module counts like `crate::`.
    std::fs::create_dir_all(dir.join("src/diag")).expect("a folder");
    std::fs::remove_file(dir.join("src/diag.rs")).expect("removable");
    write("diag/mod.rs", "mod render;\n");
    write("diag/render.rs", "use super::super::plan::Plan;\n");
    assert_found(&dir, "`diag` (layer 0) imports `plan`");
    // Two submodules of one folder importing each other: a circle inside it.
    write("diag/render.rs", "use super::line::Line;\n");
    write("diag/line.rs", "use super::render::render;\n");
    assert_found(&dir, "a circle inside `diag`");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The frontend interprets no build option itself: besides the request ID, the build args, the
/// target and the locals it reads the spec from, every option reaches it through
/// `gateway::request::BuildRequest`.
#[test]
fn the_frontend_reads_options_only_through_the_build_request() {
    const READ_DIRECTLY: &[&str] = &[
        "all",
        "build_args",
        "context_key",
        "dockerfile_key",
        "from_env",
        "local_session",
        "request_id",
        "target",
    ];
    let mut files = Vec::new();
    rust_files(&root().join("src/frontend"), &mut files);
    assert!(files.len() >= 5, "{files:?}");
    let mut found = Vec::new();
    for file in files {
        let text = code(&std::fs::read_to_string(&file).expect("readable"));
        for (at, _) in text.match_indices("options.") {
            // `options` itself, not a name ending in it (`lower_options`).
            let whole_word = text[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            if !whole_word {
                continue;
            }
            let method: String = text[at + "options.".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let called = text[at + "options.".len() + method.len()..].starts_with('(');
            if called && !READ_DIRECTLY.contains(&method.as_str()) {
                found.push(format!("{}: options.{method}()", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "interpret these in gateway::request: {found:?}"
    );
}
