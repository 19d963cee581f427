//! An in-process fake BuildKit `LLBBridge` for tests: recorded caps, workers, locals and images, recording every request.
//!
//! What it serves:
//! * `Ping`: the configured cap set (all enabled) and workers.
//! * `Solve`: the ops of the Definition are decoded (so malformed protobuf
//!   fails the solve) and the request is recorded. If the terminal op's input
//!   is a single `local://<name>` source, the result is ref `local:<name>`
//!   holding that local's files (`local.followpaths`/`includepattern` are
//!   ignored: every file is served). A `docker-image://<ref>` source gives
//!   ref `image:<ref>` holding the image's root filesystem. Anything else
//!   gives a fresh `ref-<n>` with an empty filesystem. An empty Definition
//!   gives the empty ref `""`.
//! * `ReadFile` (with `Range`), `StatFile`, `ReadDir` (flat listing of a prefix).
//!   A missing path fails like BuildKit: code Unknown, message
//!   `open <path>: no such file or directory` (BuildKit's message names the
//!   path inside its mount; only the suffix matters to callers).
//!   An unknown ref fails with code Unknown, `no such ref: <id>`.
//! * `ResolveImageConfig`: configured (digest, config JSON) by image ref.
//!   Refs are compared after Docker-style normalisation
//!   (`alpine` = `docker.io/library/alpine:latest`); a `@digest` is ignored.
//!   With `ResolverType` 1 (an OCI layout), the answer is looked up by `StoreID` and the
//!   ref's digest instead, and an empty `SessionID` fails like a missing store.
//! * `oci-layout://<name>@<digest>` sources with `oci.store` give ref `oci:<store>@<digest>`
//!   holding that layout image's root filesystem ([`FakeBuildkit::with_oci_layout`]).
//! * `Warn`, `Return`, `Inputs`: recorded / configured; `Warn` is Unimplemented
//!   when the cap set lacks `gateway.warnings`, like v0.8/v0.9.
//! * `fail_solve_with(status)`: every `Solve` fails with that `google.rpc.Status`
//!   carried in `grpc-status-details-bin`, as grpc-go sends it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context as _, Result};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::caps::Caps;
use super::errors;
use super::transport;
use crate::pb;
use crate::pb::gateway::llb_bridge_client::LlbBridgeClient;
use crate::pb::gateway::llb_bridge_server::{LlbBridge, LlbBridgeServer};

/// A filesystem: path (without leading `/`) → contents.
pub type Files = BTreeMap<String, Vec<u8>>;

#[derive(Default)]
struct State {
    caps: Caps,
    workers: Vec<pb::types::WorkerRecord>,
    locals: BTreeMap<String, Files>,
    image_configs: BTreeMap<String, (String, Vec<u8>)>,
    image_roots: BTreeMap<String, Files>,
    /// `store@digest` → (config JSON, root filesystem).
    oci_layouts: BTreeMap<String, (Vec<u8>, Files)>,
    inputs: BTreeMap<String, pb::llb::Definition>,
    exec_outputs: BTreeMap<String, Files>,
    fail_solve: Option<pb::rpc::Status>,
    refs: BTreeMap<String, Files>,
    next_ref: u64,
    solves: Vec<pb::gateway::SolveRequest>,
    resolves: Vec<pb::gateway::ResolveImageConfigRequest>,
    warnings: Vec<pb::gateway::WarnRequest>,
    returned: Vec<pb::gateway::ReturnRequest>,
    /// `ReadFile`, `StatFile` and `ReadDir` requests: (ref, path), in order.
    file_requests: Vec<(String, String)>,
}

/// The fake daemon. Configure it with the `with_*` builders, then [`FakeBuildkit::connect`].
#[derive(Clone, Default)]
pub struct FakeBuildkit {
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn files<K: Into<String>, V: Into<Vec<u8>>>(entries: impl IntoIterator<Item = (K, V)>) -> Files {
    entries
        .into_iter()
        .map(|(k, v)| (clean_path(&k.into()), v.into()))
        .collect()
}

fn clean_path(p: &str) -> String {
    p.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

impl FakeBuildkit {
    /// A daemon with the given caps (see [`Caps::from_recorded`]).
    pub fn new(caps: Caps) -> FakeBuildkit {
        let fake = FakeBuildkit::default();
        lock(&fake.state).caps = caps;
        fake
    }

    pub fn with_worker(self, worker: pb::types::WorkerRecord) -> Self {
        lock(&self.state).workers.push(worker);
        self
    }

    /// A client-side local directory (`local://<name>`).
    pub fn with_local<K: Into<String>, V: Into<Vec<u8>>>(
        self,
        name: &str,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        lock(&self.state)
            .locals
            .insert(name.to_string(), files(entries));
        self
    }

    /// The answer to `ResolveImageConfig` for `image`.
    pub fn with_image_config(self, image: &str, digest: &str, config: impl Into<Vec<u8>>) -> Self {
        lock(&self.state).image_configs.insert(
            normalize_image_ref(image),
            (digest.to_string(), config.into()),
        );
        self
    }

    /// The files an exec op "produces" when a solved definition ends on an exec
    /// one of whose arguments is `marker` (the fake runs no processes).
    pub fn with_exec_output<K: Into<String>, V: Into<Vec<u8>>>(
        self,
        marker: &str,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        lock(&self.state)
            .exec_outputs
            .insert(marker.to_string(), files(entries));
        self
    }

    /// The root filesystem served for `docker-image://<image>` sources.
    pub fn with_image_rootfs<K: Into<String>, V: Into<Vec<u8>>>(
        self,
        image: &str,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        lock(&self.state)
            .image_roots
            .insert(normalize_image_ref(image), files(entries));
        self
    }

    /// An image in the client's OCI layout store `store`, by manifest digest.
    pub fn with_oci_layout<K: Into<String>, V: Into<Vec<u8>>>(
        self,
        store: &str,
        digest: &str,
        config: impl Into<Vec<u8>>,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        lock(&self.state)
            .oci_layouts
            .insert(format!("{store}@{digest}"), (config.into(), files(entries)));
        self
    }

    /// Frontend inputs returned by `Inputs`.
    pub fn with_input(self, name: &str, def: pb::llb::Definition) -> Self {
        lock(&self.state).inputs.insert(name.to_string(), def);
        self
    }

    /// Makes every `Solve` fail with `status` (details included).
    pub fn fail_solve_with(self, status: pb::rpc::Status) -> Self {
        lock(&self.state).fail_solve = Some(status);
        self
    }

    /// A handle on what this fake records (shared with all clones).
    pub fn handle(&self) -> FakeHandle {
        FakeHandle {
            state: self.state.clone(),
        }
    }

    /// The gRPC service with BuildKit v0.14+ message limits, to serve over any transport.
    pub fn into_service(self) -> LlbBridgeServer<FakeBuildkit> {
        LlbBridgeServer::new(self)
            .max_decoding_message_size(transport::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(transport::MAX_DECODING_SIZE)
    }

    /// Serves this fake on one end of an in-memory pipe and returns a client on the other.
    pub async fn connect(self) -> Result<(LlbBridgeClient<Channel>, FakeHandle)> {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let handle = self.handle();
        let service = self.into_service();
        tokio::spawn(async move {
            let incoming = tokio_stream::once(Ok::<_, std::io::Error>(server_io));
            if let Err(e) = tonic::transport::Server::builder()
                .serve_with_incoming(service, incoming)
                .await
            {
                eprintln!("fake buildkit server stopped: {e}");
            }
        });
        let channel = transport::connect_io(client_io)
            .await
            .context("connecting to the fake")?;
        Ok((transport::client(channel), handle))
    }

    fn solve_definition(&self, def: &pb::llb::Definition) -> Result<String, Status> {
        let mut ops = BTreeMap::new();
        let mut last = None;
        for bytes in &def.def {
            let op = pb::llb::Op::decode(bytes.as_slice())
                .map_err(|e| Status::invalid_argument(format!("failed to parse op: {e}")))?;
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
            last = Some(op.clone());
            ops.insert(digest, op);
        }
        let Some(terminal) = last else {
            return Ok(String::new());
        };
        let mut st = lock(&self.state);
        let source = match (&terminal.op, terminal.inputs.as_slice()) {
            (None, [input]) => match ops.get(&input.digest) {
                Some(pb::llb::Op {
                    op: Some(pb::llb::op::Op::Source(src)),
                    ..
                }) => match src.identifier.strip_prefix("oci-layout://") {
                    Some(reference) => Some(format!(
                        "oci:{}@{}",
                        src.attrs.get("oci.store").map_or("", String::as_str),
                        reference.rsplit_once('@').map_or("", |(_, d)| d)
                    )),
                    None => Some(src.identifier.clone()),
                },
                Some(pb::llb::Op {
                    op: Some(pb::llb::op::Op::Exec(exec)),
                    ..
                }) => exec
                    .meta
                    .as_ref()
                    .and_then(|m| m.args.iter().find(|a| st.exec_outputs.contains_key(*a)))
                    .map(|name| format!("exec:{name}")),
                Some(_) => None,
                None => {
                    return Err(Status::unknown(format!(
                        "invalid definition: terminal input {} not found",
                        input.digest
                    )));
                }
            },
            _ => None,
        };
        let served = source.and_then(|id| {
            if let Some(name) = id.strip_prefix("local://") {
                st.locals
                    .get(name)
                    .map(|fs| (format!("local:{name}"), fs.clone()))
            } else if let Some(name) = id.strip_prefix("exec:") {
                st.exec_outputs
                    .get(name)
                    .map(|fs| (format!("exec:{name}"), fs.clone()))
            } else if let Some(key) = id.strip_prefix("oci:") {
                st.oci_layouts
                    .get(key)
                    .map(|(_, fs)| (format!("oci:{key}"), fs.clone()))
            } else if let Some(image) = id.strip_prefix("docker-image://") {
                let key = normalize_image_ref(image);
                st.image_roots
                    .get(&key)
                    .map(|fs| (format!("image:{key}"), fs.clone()))
            } else {
                None
            }
        });
        let (id, fs) = served.unwrap_or_else(|| {
            st.next_ref += 1;
            (format!("ref-{}", st.next_ref), Files::new())
        });
        st.refs.insert(id.clone(), fs);
        Ok(id)
    }

    /// Records a request for `path` of ref `id` and answers it from the ref's files.
    fn with_ref<T>(
        &self,
        id: &str,
        path: &str,
        f: impl FnOnce(&Files) -> Result<T, Status>,
    ) -> Result<T, Status> {
        let mut st = lock(&self.state);
        st.file_requests.push((id.to_string(), path.to_string()));
        match st.refs.get(id) {
            Some(fs) => f(fs),
            None => Err(Status::unknown(format!("no such ref: {id}"))),
        }
    }
}

fn not_found(path: &str) -> Status {
    Status::unknown(format!("open {path}: no such file or directory"))
}

fn is_dir(fs: &Files, path: &str) -> bool {
    path.is_empty() || fs.keys().any(|k| k.starts_with(&format!("{path}/")))
}

fn stat(path: &str, fs: &Files) -> Option<pb::fsutil::Stat> {
    let p = clean_path(path);
    if let Some(data) = fs.get(&p) {
        return Some(pb::fsutil::Stat {
            path: p.rsplit('/').next().unwrap_or_default().to_string(),
            mode: 0o644,
            size: i64::try_from(data.len()).unwrap_or(i64::MAX),
            ..Default::default()
        });
    }
    is_dir(fs, p.trim_end_matches('/')).then(|| pb::fsutil::Stat {
        path: p.rsplit('/').next().unwrap_or_default().to_string(),
        mode: 0o755 | (1 << 31), // Go's os.ModeDir
        ..Default::default()
    })
}

/// Docker-style normalisation: `alpine` → `docker.io/library/alpine:latest`; a `@digest` is dropped.
pub fn normalize_image_ref(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let mut full = if first.is_empty() {
        format!("docker.io/library/{rest}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        name.to_string()
    } else {
        format!("docker.io/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') {
        full.push_str(":latest");
    }
    full
}

#[tonic::async_trait]
impl LlbBridge for FakeBuildkit {
    async fn resolve_image_config(
        &self,
        request: Request<pb::gateway::ResolveImageConfigRequest>,
    ) -> Result<Response<pb::gateway::ResolveImageConfigResponse>, Status> {
        let req = request.into_inner();
        let mut st = lock(&self.state);
        st.resolves.push(req.clone());
        if req.resolver_type == super::bridge::RESOLVER_TYPE_OCI_LAYOUT {
            let digest = req.r#ref.rsplit_once('@').map_or("", |(_, d)| d);
            let key = format!("{}@{digest}", req.store_id);
            return match st.oci_layouts.get(&key) {
                Some((config, _)) if !req.session_id.is_empty() => {
                    Ok(Response::new(pb::gateway::ResolveImageConfigResponse {
                        digest: digest.to_string(),
                        config: config.clone(),
                        r#ref: String::new(),
                    }))
                }
                _ => Err(Status::unknown(format!(
                    "{}: failed to resolve source metadata for {}: oci-layout store {:?} in session {:?} has no {digest}",
                    req.r#ref, req.r#ref, req.store_id, req.session_id
                ))),
            };
        }
        match st.image_configs.get(&normalize_image_ref(&req.r#ref)) {
            Some((digest, config)) => Ok(Response::new(pb::gateway::ResolveImageConfigResponse {
                digest: digest.clone(),
                config: config.clone(),
                r#ref: String::new(),
            })),
            None => Err(Status::unknown(format!(
                "{}: failed to resolve source metadata for {}: not found",
                req.r#ref, req.r#ref
            ))),
        }
    }

    async fn solve(
        &self,
        request: Request<pb::gateway::SolveRequest>,
    ) -> Result<Response<pb::gateway::SolveResponse>, Status> {
        let req = request.into_inner();
        let fail = {
            let mut st = lock(&self.state);
            st.solves.push(req.clone());
            st.fail_solve.clone()
        };
        if let Some(status) = fail {
            return Err(errors::status_to_tonic(&status));
        }
        let id = self.solve_definition(&req.definition.unwrap_or_default())?;
        let result = if req.allow_result_array_ref {
            pb::gateway::result::Result::Ref(pb::gateway::Ref { id, def: None })
        } else {
            pb::gateway::result::Result::RefDeprecated(id)
        };
        Ok(Response::new(pb::gateway::SolveResponse {
            r#ref: String::new(),
            result: Some(pb::gateway::Result {
                result: Some(result),
                metadata: BTreeMap::new(),
            }),
        }))
    }

    async fn read_file(
        &self,
        request: Request<pb::gateway::ReadFileRequest>,
    ) -> Result<Response<pb::gateway::ReadFileResponse>, Status> {
        let req = request.into_inner();
        self.with_ref(&req.r#ref, &req.file_path, |fs| {
            let data = fs
                .get(&clean_path(&req.file_path))
                .ok_or_else(|| not_found(&req.file_path))?;
            let data = match req.range {
                None => data.clone(),
                Some(r) => {
                    let start = usize::try_from(r.offset).unwrap_or(0).min(data.len());
                    let len = usize::try_from(r.length).unwrap_or(0);
                    data[start..start.saturating_add(len).min(data.len())].to_vec()
                }
            };
            Ok(Response::new(pb::gateway::ReadFileResponse { data }))
        })
    }

    async fn read_dir(
        &self,
        request: Request<pb::gateway::ReadDirRequest>,
    ) -> Result<Response<pb::gateway::ReadDirResponse>, Status> {
        let req = request.into_inner();
        self.with_ref(&req.r#ref, &req.dir_path, |fs| {
            let dir = clean_path(&req.dir_path).trim_end_matches('/').to_string();
            if !is_dir(fs, &dir) {
                return Err(not_found(&req.dir_path));
            }
            let prefix = if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            };
            let mut names: Vec<String> = fs
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter_map(|rest| rest.split('/').next())
                .map(str::to_string)
                .collect();
            names.dedup();
            let entries = names
                .iter()
                .filter_map(|n| stat(&format!("{prefix}{n}"), fs))
                .collect();
            Ok(Response::new(pb::gateway::ReadDirResponse { entries }))
        })
    }

    async fn stat_file(
        &self,
        request: Request<pb::gateway::StatFileRequest>,
    ) -> Result<Response<pb::gateway::StatFileResponse>, Status> {
        let req = request.into_inner();
        self.with_ref(&req.r#ref, &req.path, |fs| {
            let st = stat(&req.path, fs).ok_or_else(|| not_found(&req.path))?;
            Ok(Response::new(pb::gateway::StatFileResponse {
                stat: Some(st),
            }))
        })
    }

    async fn evaluate(
        &self,
        request: Request<pb::gateway::EvaluateRequest>,
    ) -> Result<Response<pb::gateway::EvaluateResponse>, Status> {
        let req = request.into_inner();
        if lock(&self.state).refs.contains_key(&req.r#ref) {
            Ok(Response::new(pb::gateway::EvaluateResponse {}))
        } else {
            Err(Status::unknown(format!("no such ref: {}", req.r#ref)))
        }
    }

    async fn ping(
        &self,
        _request: Request<pb::gateway::PingRequest>,
    ) -> Result<Response<pb::gateway::PongResponse>, Status> {
        let st = lock(&self.state);
        Ok(Response::new(st.caps.to_pong(st.workers.clone())))
    }

    async fn r#return(
        &self,
        request: Request<pb::gateway::ReturnRequest>,
    ) -> Result<Response<pb::gateway::ReturnResponse>, Status> {
        let mut st = lock(&self.state);
        if !st.returned.is_empty() {
            return Err(Status::unknown("gateway result is already set"));
        }
        st.returned.push(request.into_inner());
        Ok(Response::new(pb::gateway::ReturnResponse {}))
    }

    async fn inputs(
        &self,
        _request: Request<pb::gateway::InputsRequest>,
    ) -> Result<Response<pb::gateway::InputsResponse>, Status> {
        let st = lock(&self.state);
        Ok(Response::new(pb::gateway::InputsResponse {
            definitions: st.inputs.clone(),
        }))
    }

    async fn warn(
        &self,
        request: Request<pb::gateway::WarnRequest>,
    ) -> Result<Response<pb::gateway::WarnResponse>, Status> {
        let mut st = lock(&self.state);
        if !st.caps.has_gateway("gateway.warnings") {
            return Err(Status::unimplemented("unknown method Warn"));
        }
        st.warnings.push(request.into_inner());
        Ok(Response::new(pb::gateway::WarnResponse {}))
    }
}

/// What the fake saw, for assertions. Shares state with the running server.
#[derive(Clone)]
pub struct FakeHandle {
    state: Arc<Mutex<State>>,
}

impl FakeHandle {
    /// Every `SolveRequest`, in order.
    pub fn solves(&self) -> Vec<pb::gateway::SolveRequest> {
        lock(&self.state).solves.clone()
    }

    /// Every `ResolveImageConfigRequest`, in order.
    pub fn resolves(&self) -> Vec<pb::gateway::ResolveImageConfigRequest> {
        lock(&self.state).resolves.clone()
    }

    /// Every accepted `WarnRequest`, in order.
    pub fn warnings(&self) -> Vec<pb::gateway::WarnRequest> {
        lock(&self.state).warnings.clone()
    }

    /// The accepted `ReturnRequest`, if any (a second `Return` is rejected like BuildKit does).
    pub fn returned(&self) -> Option<pb::gateway::ReturnRequest> {
        lock(&self.state).returned.first().cloned()
    }

    /// Every `ReadFile`, `StatFile` and `ReadDir` request as (ref, path), in order.
    pub fn file_requests(&self) -> Vec<(String, String)> {
        lock(&self.state).file_requests.clone()
    }

    /// The files of a ref the fake handed out.
    pub fn ref_files(&self, id: &str) -> Option<Files> {
        lock(&self.state).refs.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_normalise() {
        assert_eq!(
            normalize_image_ref("alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            normalize_image_ref("debian:bookworm"),
            "docker.io/library/debian:bookworm"
        );
        assert_eq!(normalize_image_ref("me/img"), "docker.io/me/img:latest");
        assert_eq!(
            normalize_image_ref("docker.io/library/debian:bookworm@sha256:ab"),
            "docker.io/library/debian:bookworm"
        );
        assert_eq!(
            normalize_image_ref("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
    }
}
