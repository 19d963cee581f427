//! A readable, stable text dump of a `pb::Definition`, like `buildctl debug dump-llb`.
//!
//! Used by `sysfile llb --dump` and by the golden tests. Digests are shortened
//! to 12 hex digits; everything else is printed as decoded.

use std::fmt::Write as _;

use prost::Message;

use crate::pb::llb as pb;

/// Decodes every op of `definition` and renders it; an op that fails to decode is an error.
pub fn render(definition: &pb::Definition) -> Result<String, prost::DecodeError> {
    let mut out = String::new();
    let last = definition.def.len().saturating_sub(1);
    for (i, bytes) in definition.def.iter().enumerate() {
        let digest = super::digest(bytes);
        let op = pb::Op::decode(bytes.as_slice())?;
        let meta = definition.metadata.get(&digest);
        let name = meta
            .and_then(|m| m.description.get("llb.customname"))
            .map(String::as_str)
            .unwrap_or(if i == last { "(terminal)" } else { "" });
        let _ = writeln!(out, "op {} {}", short(&digest), name);
        for input in &op.inputs {
            let _ = writeln!(out, "  input {}:{}", short(&input.digest), input.index);
        }
        if let Some(p) = &op.platform {
            let _ = writeln!(
                out,
                "  platform {}/{}{}",
                p.os,
                p.architecture,
                opt_prefix("/", &p.variant)
            );
        }
        match &op.op {
            None => {}
            Some(pb::op::Op::Source(s)) => {
                let _ = writeln!(out, "  source {}", s.identifier);
                for (k, v) in &s.attrs {
                    let v = if k == "local.session" || k == "oci.session" {
                        "<session>"
                    } else {
                        v
                    };
                    let _ = writeln!(out, "    {k} = {v}");
                }
            }
            Some(pb::op::Op::Exec(e)) => render_exec(&mut out, e),
            Some(pb::op::Op::File(f)) => render_file(&mut out, f),
            Some(pb::op::Op::Merge(m)) => {
                let inputs: Vec<String> = m.inputs.iter().map(|i| i.input.to_string()).collect();
                let _ = writeln!(out, "  merge {}", inputs.join(" "));
            }
            Some(pb::op::Op::Diff(d)) => {
                let _ = writeln!(
                    out,
                    "  diff lower={} upper={}",
                    d.lower.as_ref().map_or(-1, |l| l.input),
                    d.upper.as_ref().map_or(-1, |u| u.input)
                );
            }
        }
        if let Some(meta) = meta {
            if meta.ignore_cache {
                let _ = writeln!(out, "  ignore-cache");
            }
            let caps: Vec<&str> = meta.caps.keys().map(String::as_str).collect();
            if !caps.is_empty() {
                let _ = writeln!(out, "  caps {}", caps.join(","));
            }
        }
        if let Some(locations) = definition
            .source
            .as_ref()
            .and_then(|s| s.locations.get(&digest))
        {
            for loc in &locations.locations {
                for r in &loc.ranges {
                    let (start, end) = (r.start.unwrap_or_default(), r.end.unwrap_or_default());
                    let _ = writeln!(
                        out,
                        "  at source[{}] {}:{}-{}:{}",
                        loc.source_index, start.line, start.character, end.line, end.character
                    );
                }
            }
        }
    }
    if let Some(source) = &definition.source {
        for (i, info) in source.infos.iter().enumerate() {
            let _ = writeln!(
                out,
                "source[{i}] {} ({}, {} bytes)",
                info.filename,
                info.language,
                info.data.len()
            );
        }
    }
    Ok(out)
}

fn render_exec(out: &mut String, e: &pb::ExecOp) {
    if let Some(meta) = &e.meta {
        let _ = writeln!(
            out,
            "  exec {}",
            serde_json::to_string(&meta.args).unwrap_or_default()
        );
        for env in &meta.env {
            let _ = writeln!(out, "    env {env}");
        }
        let _ = writeln!(
            out,
            "    cwd {}{}",
            meta.cwd,
            opt_prefix(" user ", &meta.user)
        );
        for host in &meta.extra_hosts {
            let _ = writeln!(out, "    host {}={}", host.host, host.ip);
        }
        if meta.remove_mount_stubs_recursive {
            let _ = writeln!(out, "    remove-mount-stubs-recursive");
        }
    }
    let network = pb::NetMode::try_from(e.network).map_or("?", |n| n.as_str_name());
    let _ = writeln!(out, "    network {network}");
    for m in &e.mounts {
        let kind = pb::MountType::try_from(m.mount_type).map_or("?", |t| t.as_str_name());
        let mut line = format!(
            "    mount {} {kind} input={} output={}",
            m.dest, m.input, m.output
        );
        if !m.selector.is_empty() {
            let _ = write!(line, " selector={}", m.selector);
        }
        if m.readonly {
            line.push_str(" readonly");
        }
        if let Some(c) = &m.cache_opt {
            let sharing = pb::CacheSharingOpt::try_from(c.sharing).map_or("?", |s| s.as_str_name());
            let _ = write!(line, " id={} sharing={sharing}", c.id);
        }
        if let Some(t) = &m.tmpfs_opt {
            let _ = write!(line, " size={}", t.size);
        }
        if let Some(s) = &m.secret_opt {
            let _ = write!(
                line,
                " id={} uid={} gid={} mode={:o} optional={}",
                s.id, s.uid, s.gid, s.mode, s.optional
            );
        }
        if let Some(s) = &m.ssh_opt {
            let _ = write!(
                line,
                " id={} mode={:o} optional={}",
                s.id, s.mode, s.optional
            );
        }
        let _ = writeln!(out, "{line}");
    }
}

fn render_file(out: &mut String, f: &pb::FileOp) {
    for a in &f.actions {
        let head = format!("  [{} {} -> {}]", a.input, a.secondary_input, a.output);
        let body = match &a.action {
            Some(pb::file_action::Action::Copy(c)) => format!(
                "copy {} {} mode={} owner={} follow={} contents={} create={} wildcard={}",
                c.src,
                c.dest,
                mode(c.mode),
                owner(&c.owner),
                c.follow_symlink,
                c.dir_copy_contents,
                c.create_dest_path,
                c.allow_wildcard
            ),
            Some(pb::file_action::Action::Mkfile(m)) => format!(
                "mkfile {} mode={} owner={} data={:?}",
                m.path,
                mode(m.mode),
                owner(&m.owner),
                String::from_utf8_lossy(&m.data)
            ),
            Some(pb::file_action::Action::Mkdir(m)) => {
                format!(
                    "mkdir {} mode={} parents={} owner={}",
                    m.path,
                    mode(m.mode),
                    m.make_parents,
                    owner(&m.owner)
                )
            }
            Some(pb::file_action::Action::Rm(r)) => {
                format!(
                    "rm {} allow-not-found={} wildcard={}",
                    r.path, r.allow_not_found, r.allow_wildcard
                )
            }
            Some(pb::file_action::Action::Symlink(s)) => {
                format!("symlink {} -> {}", s.newpath, s.oldpath)
            }
            None => "(empty action)".to_string(),
        };
        let _ = writeln!(out, "{head} {body}");
    }
}

fn mode(mode: i32) -> String {
    if mode < 0 {
        "keep".to_string()
    } else {
        format!("{mode:04o}")
    }
}

fn owner(owner: &Option<pb::ChownOpt>) -> String {
    let Some(owner) = owner else {
        return "-".to_string();
    };
    let one = |u: &Option<pb::UserOpt>| match u.as_ref().and_then(|u| u.user.as_ref()) {
        Some(pb::user_opt::User::ByName(n)) => format!("{}@{}", n.name, n.input),
        Some(pb::user_opt::User::ById(id)) => id.to_string(),
        None => "-".to_string(),
    };
    format!("{}:{}", one(&owner.user), one(&owner.group))
}

fn opt_prefix(prefix: &str, value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        format!("{prefix}{value}")
    }
}

/// The first 12 hex digits of a digest.
fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}
