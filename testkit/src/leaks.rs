//! Finding leaks in built images, for the e2e tests: a `docker save` scanner that searches every
//! layer, file and config for given bytes, random secrets to look for, and a throwaway
//! `ssh-agent`. Shared by `tests/e2e_parity.rs` and `tests/e2e_features.rs`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// `n` random bytes as lowercase hex (2n characters), from /dev/urandom.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    hex::encode(buf)
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// What [`scan_saved_image`] looked at and where it found the needles.
#[derive(Debug, Default)]
pub struct Scan {
    /// Layer tarballs listed in manifest.json and scanned.
    pub layers: usize,
    /// Files looked at: archive members, extracted layer files, config.
    pub files: usize,
    /// Paths (`layer N: etc/x`) of every layer entry.
    pub layer_paths: Vec<String>,
    /// Per needle: where it was found.
    pub hits: Vec<Vec<String>>,
}

/// Decompresses a layer blob: gzip (magic 1f 8b) through `gzip -dc`, zstd (28 b5 2f fd) through
/// `zstd -dc`, a plain tar (`ustar` at offset 257) as is. Panics on anything else.
pub fn layer_tar(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).unwrap();
    let tool = if data.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else {
        None
    };
    let Some(tool) = tool else {
        assert!(
            (data.len() >= 262 && &data[257..262] == b"ustar") || data.iter().all(|b| *b == 0),
            "{}: neither gzip, zstd nor a tar archive",
            path.display()
        );
        return data;
    };
    let out = Command::new(tool)
        .args(["-dc", path.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(out.status.success(), "{tool} -dc {}", path.display());
    out.stdout
}

/// Every regular file and symlink under `dir` (symlinks are not followed).
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, out);
        } else if meta.is_file() || meta.file_type().is_symlink() {
            out.push(path);
        }
    }
}

/// Extracts the tar archive `archive` into the new directory `into` (`tar -xf … -C …` plus
/// `flags`); `what` names it in the failure.
fn extract(archive: &Path, into: &Path, flags: &[&str], what: &str) {
    std::fs::create_dir(into).unwrap();
    let mut args = vec![
        "-xf",
        archive.to_str().unwrap(),
        "-C",
        into.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let r = run("tar", &args);
    assert!(r.ok(), "extracting {what}: {}", r.stderr.trim());
}

/// `docker save`s `image` (Docker 26 format: `index.json`, `oci-layout`, `blobs/sha256/*`,
/// `manifest.json`; the older `<id>/layer.tar` layout works too, as manifest.json names the
/// layers either way), then searches for each needle in: every member of the archive (raw
/// bytes, which includes the config JSON with its history), every layer's decompressed tar
/// stream, every file extracted from every layer (content, name and symlink target), the
/// parsed config's `history`, `docker history --no-trunc` and `docker image inspect`.
pub fn scan_saved_image(image: &str, needles: &[&[u8]]) -> Scan {
    let work = tempdir();
    let archive = work.path().join("image.tar");
    let r = docker(&["save", "-o", archive.to_str().unwrap(), image]);
    assert!(r.ok(), "docker save {image}: {}", r.stderr.trim());
    let saved = work.path().join("saved");
    extract(&archive, &saved, &[], "docker save output");

    let mut scan = Scan {
        hits: vec![Vec::new(); needles.len()],
        ..Scan::default()
    };
    let record = |scan: &mut Scan, data: &[u8], place: &str| {
        for (i, n) in needles.iter().enumerate() {
            if contains(data, n) {
                scan.hits[i].push(place.to_string());
            }
        }
    };

    // 1. Every member of the saved archive, raw.
    assert!(
        saved.join("manifest.json").is_file(),
        "docker save wrote no manifest.json"
    );
    if !saved.join("index.json").is_file() {
        eprintln!("[e2e_parity] note: docker save wrote no index.json (pre-25 format)");
    }
    let mut members = Vec::new();
    walk(&saved, &mut members);
    for m in &members {
        let data = std::fs::read(m).unwrap_or_default();
        scan.files += 1;
        record(
            &mut scan,
            &data,
            &format!("archive {}", m.strip_prefix(&saved).unwrap().display()),
        );
    }

    // 2. The layers and the config named by manifest.json.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(saved.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest[0];
    let layers: Vec<String> = entry["Layers"]
        .as_array()
        .expect("manifest.json Layers")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert!(!layers.is_empty(), "no layers in {manifest}");
    for (n, layer) in layers.iter().enumerate() {
        let stream = layer_tar(&saved.join(layer));
        record(&mut scan, &stream, &format!("layer {n} tar stream"));
        let tar_path = work.path().join(format!("layer{n}.tar"));
        std::fs::write(&tar_path, &stream).unwrap();
        drop(stream);
        let listing = run("tar", &["-tf", tar_path.to_str().unwrap()]);
        assert!(listing.ok(), "tar -tf layer {n}: {}", listing.stderr.trim());
        scan.layer_paths.extend(
            listing
                .stdout
                .lines()
                .map(|p| format!("layer {n}: {}", p.trim_start_matches("./"))),
        );
        let dir = work.path().join(format!("layer{n}"));
        extract(
            &tar_path,
            &dir,
            &["--no-same-owner", "--no-same-permissions"],
            &format!("layer {n}"),
        );
        let _ = std::fs::remove_file(&tar_path);
        let mut files = Vec::new();
        walk(&dir, &mut files);
        for f in &files {
            let rel = f.strip_prefix(&dir).unwrap().display().to_string();
            let place = format!("layer {n} file {rel}");
            scan.files += 1;
            record(&mut scan, rel.as_bytes(), &format!("{place} (name)"));
            if let Ok(target) = std::fs::read_link(f) {
                record(
                    &mut scan,
                    target.as_os_str().as_encoded_bytes(),
                    &format!("{place} (symlink target)"),
                );
            } else if let Ok(data) = std::fs::read(f) {
                record(&mut scan, &data, &place);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        scan.layers += 1;
    }
    let config_path = saved.join(entry["Config"].as_str().expect("manifest.json Config"));
    let config_raw = std::fs::read(&config_path).unwrap();
    record(&mut scan, &config_raw, "config blob");
    let config: serde_json::Value = serde_json::from_slice(&config_raw).unwrap();
    let history = serde_json::to_string(&config["history"]).unwrap();
    assert!(
        config["history"].as_array().is_some_and(|h| !h.is_empty()),
        "the config has no history: {config}"
    );
    record(&mut scan, history.as_bytes(), "config history");

    // 3. What the engine shows about the image.
    let h = docker(&["history", "--no-trunc", image]);
    assert!(h.ok(), "docker history: {}", h.stderr.trim());
    record(&mut scan, h.stdout.as_bytes(), "docker history --no-trunc");
    let i = docker(&["image", "inspect", image]);
    record(&mut scan, i.stdout.as_bytes(), "docker image inspect");
    scan
}

/// An `ssh-agent -D -a SOCKET` child, killed (by its pid) on drop.
pub struct Agent {
    child: Child,
    pub socket: PathBuf,
}

impl Agent {
    pub fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .args(["-D", "-a", socket.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run ssh-agent (is openssh-client installed?)");
        let agent = Agent { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    pub fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
