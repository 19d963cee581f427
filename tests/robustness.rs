//! The loader and the renderer never panic: garbage, deep nesting, huge files and random mutations of good specs.

use sysfile::diag::{SourceFile, render};
use sysfile::spec::{LoadOptions, load};

fn check(text: &str) -> usize {
    let loaded = load(SourceFile::new("Sysfile", text), &LoadOptions::default());
    let rendered = render(&loaded.diagnostics, &loaded.sources, false);
    let has_error = loaded.diagnostics.iter().any(|d| d.is_error());
    assert_eq!(loaded.spec.is_some(), !has_error);
    for d in &loaded.diagnostics {
        assert!(
            d.span.start <= d.span.end && d.span.end <= text.len(),
            "{d:?}"
        );
    }
    rendered.len()
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

#[test]
fn garbage_bytes() {
    let mut rng = Rng(0x5eed);
    for len in [1, 7, 64, 1000, 10_000] {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn deep_nesting() {
    let n = 10_000;
    check(&format!("a = {}{}", "[".repeat(n), "]".repeat(n)));
    check(&"[".repeat(n));
    check(&format!("[image]\nfrom = {}", "[".repeat(n)));
    check(&format!("x = {}{}", "{a=".repeat(n), "}".repeat(n)));
    check(&format!("{}x = 1", "a.".repeat(n)));
}

#[test]
fn huge_file() {
    let mut text = String::from("[image]\nfrom = \"debian\"\n[packages]\ninstall = [\n");
    while text.len() < 5 << 20 {
        text.push_str("  \"package-name\", \"other-package\",\n");
    }
    text.push_str("  \"-bad\", \"${UNDECLARED}\",\n]\n");
    assert!(check(&text) > 0);
    let long_line = format!("[image]\nfrom = \"{}\"\n", "a".repeat(5 << 20));
    check(&long_line);
}

#[test]
fn edge_inputs() {
    check("");
    check("\u{feff}");
    check("\u{feff}[image]\nfrom = \"debian\"\n");
    check("# only a comment\n# and another\n");
    check("\n\n\n");
    check("\r\n[image]\r\nfrom = \"debian\"\r\ntitle = \"\"\"\r\n${X}\"\"\"\r\n");
    check("[image]\nfrom = \"\\u00e9${X}\"\n");
    check("[image]\nfrom = '''\n${X'''\n");
    check("[image]\nfrom = \"${\"\n");
    check("[image]\nfrom = \"$\"\n");
}

const MUTATIONS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "=",
    ",",
    ".",
    "\n",
    "#",
    "\\",
    "$",
    "${",
    "}",
    "${X}",
    "$$",
    "é",
    "\u{feff}",
    "\u{0}",
    "0o777",
    "-1",
    "99999999999999999999",
    "1.5",
    "true",
    "1979-05-27",
    "/",
    "..",
    "[image]",
    "[[run]]",
    "[[files]]",
    "mounts = [{type=\"bind\"}]",
    "@.service",
    " ",
    "\t",
    "\r\n",
];

#[test]
fn random_mutations_of_good_specs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good");
    let mut seeds: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..2000 {
        let seed = &seeds[rng.below(seeds.len())];
        let mut chars: Vec<char> = seed.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(chars.len() + 1);
            match rng.below(4) {
                0 => {
                    let end = (at + rng.below(16)).min(chars.len());
                    chars.drain(at..end);
                }
                1 | 2 => {
                    let insert = MUTATIONS[rng.below(MUTATIONS.len())];
                    chars.splice(at..at, insert.chars());
                }
                _ => {
                    if at < chars.len() {
                        chars[at] = char::from(rng.next() as u8 & 0x7f);
                    }
                }
            }
        }
        let text: String = chars.into_iter().collect();
        check(&text);
    }
}

/// Every fixture, and random mutations of good ones, as included fragments of each other: no panic, spans inside their files.
#[test]
fn fixtures_as_includes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut texts = Vec::new();
    for dir in ["good", "bad"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
    }
    let mut rng = Rng(0x1c1);
    for round in 0..300 {
        let mut options = LoadOptions::default();
        let names = ["a.toml", "b.toml", "c/d.toml"];
        for name in names {
            let mut text = texts[rng.below(texts.len())].clone();
            if round % 3 == 0 && !text.is_empty() {
                let at = rng.below(text.len());
                if text.is_char_boundary(at) {
                    text.insert_str(
                        at,
                        ["\n", "]", "\"", "include = [\"a.toml\"]\n", "\u{feff}"][rng.below(5)],
                    );
                }
            }
            let include = format!("include = [\"{}\"]\n", names[rng.below(names.len())]);
            options.includes.insert(name.to_string(), include + &text);
        }
        let main_text = format!(
            "include = [\"a.toml\", \"b.toml\", \"c/./d.toml\"]\n{}",
            texts[rng.below(texts.len())]
        );
        let loaded = load(SourceFile::new("Sysfile", main_text), &options);
        let _ = render(&loaded.diagnostics, &loaded.sources, false);
        let has_error = loaded.diagnostics.iter().any(|d| d.is_error());
        assert_eq!(loaded.spec.is_some(), !has_error);
        for d in &loaded.diagnostics {
            let file = loaded.sources.try_get(d.span.file).expect("a known file");
            assert!(
                d.span.start <= d.span.end && d.span.end <= file.text.len(),
                "{d:?}"
            );
            assert!(d.help.is_some(), "{d:?}");
        }
        if let Some(spec) = &loaded.spec {
            for w in sysfile::lint::check(spec, &loaded.sources) {
                let file = loaded.sources.get(w.span.file);
                assert!(w.span.end <= file.text.len());
            }
            let _ = sysfile::outline::outline(spec, &loaded.sources);
            let _ = sysfile::outline::lint_result(&loaded.sources, &loaded.diagnostics);
        }
    }
}
