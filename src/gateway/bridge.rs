//! [`Bridge`]: a thin typed wrapper over the `LLBBridge` client, gating optional RPCs on the daemon's caps.
//!
//! Errors from BuildKit are kept as the original `tonic::Status` in
//! [`BridgeError`], so the frontend can hand them back in `Return{error}`
//! unchanged (see [`super::errors::status_from_tonic`]).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use tonic::transport::Channel;

use super::caps::Caps;
use super::errors;
use super::options::ResolveMode;
use crate::pb;
use crate::pb::gateway::llb_bridge_client::LlbBridgeClient;

/// How long `Ping` may take (BuildKit's own Go client uses 15 s).
pub const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// `ResolveImageConfigRequest.ResolverType` for an OCI layout store (0 is a registry).
pub const RESOLVER_TYPE_OCI_LAYOUT: i32 = 1;

/// A failed call to BuildKit.
#[derive(Debug)]
pub enum BridgeError {
    /// BuildKit answered with an error; pass it through unchanged.
    Status(tonic::Status),
    /// The answer made no sense to us (missing fields, unexpected shapes, timeouts).
    Protocol(String),
}

impl BridgeError {
    /// The `google.rpc.Status` to put in `Return{error}`: BuildKit's own, unchanged, or a code-2 one.
    pub fn to_rpc_status(&self) -> pb::rpc::Status {
        match self {
            BridgeError::Status(s) => errors::status_from_tonic(s),
            BridgeError::Protocol(m) => errors::plain_status(m.clone()),
        }
    }

    /// Whether this is BuildKit's "file not found" (code NotFound, or `no such file or directory`).
    pub fn is_not_found(&self) -> bool {
        match self {
            BridgeError::Status(s) => {
                s.code() == tonic::Code::NotFound
                    || s.message().contains("no such file or directory")
            }
            BridgeError::Protocol(_) => false,
        }
    }

    /// The original tonic Status, if BuildKit sent one.
    pub fn tonic_status(&self) -> Option<&tonic::Status> {
        match self {
            BridgeError::Status(s) => Some(s),
            BridgeError::Protocol(_) => None,
        }
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Status(s) => write!(f, "{}", s.message()),
            BridgeError::Protocol(m) => write!(f, "unexpected answer from BuildKit: {m}"),
        }
    }
}

impl std::error::Error for BridgeError {}

impl From<tonic::Status> for BridgeError {
    fn from(s: tonic::Status) -> Self {
        BridgeError::Status(s)
    }
}

/// What `Ping` tells us.
#[derive(Clone, Debug, Default)]
pub struct Pong {
    pub caps: Caps,
    pub workers: Vec<pb::types::WorkerRecord>,
}

/// Where the debug lines of [`Bridge::set_debug`] go.
#[derive(Clone, Debug, Default)]
pub enum DebugSink {
    /// The frontend's stderr, which BuildKit writes to its log.
    #[default]
    Stderr,
    /// A list the caller reads (tests).
    Lines(std::sync::Arc<std::sync::Mutex<Vec<String>>>),
}

/// The typed `LLBBridge` client.
#[derive(Clone, Debug)]
pub struct Bridge {
    client: LlbBridgeClient<Channel>,
    caps: Caps,
    /// Log every request with its time (see [`Bridge::set_debug`]).
    debug: bool,
    /// Where those lines go.
    debug_sink: DebugSink,
    /// While debugging: how long at least one request was in flight.
    waiting: std::sync::Arc<std::sync::Mutex<Waiting>>,
    /// When the bridge was made: debug lines say when each request went out and came back,
    /// in ms from then.
    created: std::time::Instant,
    /// The same moment on the wall clock, which lines those offsets up with the daemon's trace.
    created_wall: std::time::SystemTime,
}

/// Requests in flight and the time spent with at least one of them.
#[derive(Debug, Default)]
struct Waiting {
    in_flight: usize,
    since: Option<std::time::Instant>,
    total: Duration,
}

impl Bridge {
    /// Wraps a client. Caps are empty until [`Bridge::ping`] is called.
    pub fn new(client: LlbBridgeClient<Channel>) -> Bridge {
        Bridge {
            client,
            caps: Caps::default(),
            debug: false,
            debug_sink: DebugSink::Stderr,
            waiting: Default::default(),
            created: std::time::Instant::now(),
            created_wall: std::time::SystemTime::now(),
        }
    }

    /// Whether requests are being logged.
    pub fn debugging(&self) -> bool {
        self.debug
    }

    /// While debugging, the time during which at least one request was waiting for BuildKit:
    /// the frontend's own time is the rest.
    pub fn waited(&self) -> Duration {
        self.waiting.lock().map_or(Duration::ZERO, |w| w.total)
    }

    /// Logs every request from now on, with how long BuildKit took to answer and when it was
    /// sent and answered (ms since the bridge was made), as
    /// `sysfile: debug: <request> <what>: <ms> ms (+<sent>..+<answered>)`, to the debug sink:
    /// stderr (the daemon's log) unless [`Bridge::set_debug_sink`] chose another.
    pub fn set_debug(&mut self, debug: bool) {
        self.debug = debug;
    }

    /// When the bridge was made, as the time since the Unix epoch: the `+ms` offsets of the debug
    /// lines count from then.
    pub fn created_since_epoch(&self) -> Duration {
        self.created_wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }

    /// Sends the debug lines to `sink` instead of stderr.
    pub fn set_debug_sink(&mut self, sink: DebugSink) {
        self.debug_sink = sink;
    }

    /// Logs `line` when debugging.
    pub fn debug_line(&self, line: String) {
        if !self.debug {
            return;
        }
        match &self.debug_sink {
            DebugSink::Stderr => eprintln!("{line}"),
            DebugSink::Lines(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
        }
    }

    /// Awaits `request`, logging its time when debugging.
    async fn timed<T>(&self, what: impl FnOnce() -> String, request: impl Future<Output = T>) -> T {
        if !self.debug {
            return request.await;
        }
        let started = std::time::Instant::now();
        if let Ok(mut waiting) = self.waiting.lock() {
            if waiting.in_flight == 0 {
                waiting.since = Some(started);
            }
            waiting.in_flight += 1;
        }
        let out = request.await;
        let answered = std::time::Instant::now();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.in_flight -= 1;
            if waiting.in_flight == 0 {
                if let Some(since) = waiting.since.take() {
                    waiting.total += answered.duration_since(since);
                }
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        self.debug_line(format!(
            "sysfile: debug: {}: {:.1} ms (+{:.1}..+{:.1})",
            what(),
            ms(answered.duration_since(started)),
            ms(started.duration_since(self.created)),
            ms(answered.duration_since(self.created))
        ));
        out
    }

    /// The caps learned by the last `ping`.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// Calls `Ping` (within [`PING_TIMEOUT`]) and remembers the caps for gating.
    pub async fn ping(&mut self) -> Result<Pong, BridgeError> {
        let mut client = self.client.clone();
        let call = client.ping(pb::gateway::PingRequest {});
        let pong = self
            .timed(
                || "Ping".to_string(),
                tokio::time::timeout(PING_TIMEOUT, call),
            )
            .await
            .map_err(|_| {
                BridgeError::Protocol(format!("Ping got no answer within {PING_TIMEOUT:?}"))
            })??
            .into_inner();
        let caps = Caps::from_pong(&pong);
        self.caps = caps.clone();
        Ok(Pong {
            caps,
            workers: pong.workers,
        })
    }

    /// Solves an LLB definition and returns the result's ref id (`""` = empty filesystem).
    ///
    /// Always sets `allowResultReturn` and `allowResultArrayRef`; the solve is
    /// lazy unless `evaluate` is set.
    pub async fn solve(
        &self,
        def: pb::llb::Definition,
        cache_imports: Vec<pb::gateway::CacheOptionsEntry>,
        evaluate: bool,
    ) -> Result<String, BridgeError> {
        let req = pb::gateway::SolveRequest {
            definition: Some(def),
            allow_result_return: true,
            allow_result_array_ref: true,
            cache_imports,
            evaluate,
            ..Default::default()
        };
        // Daemons before v0.14 refuse requests over 4 MiB with an opaque transport error.
        let limit = super::transport::request_size_limit(&self.caps);
        let size = prost::Message::encoded_len(&req);
        if size > limit {
            return Err(BridgeError::Protocol(format!(
                "the build definition is {:.1} MiB, over this BuildKit's {} MiB request limit: large inline `content` or a large Sysfile (sent with every step for error locations) can cause this; move big files into the build context",
                size as f64 / 1_048_576.0,
                limit / 1_048_576
            )));
        }
        let ops = req.definition.as_ref().map_or(0, |d| d.def.len());
        let mut client = self.client.clone();
        let resp = self
            .timed(
                || format!("Solve {ops} ops, evaluate={evaluate}"),
                client.solve(req),
            )
            .await?
            .into_inner();
        single_ref(resp)
    }

    /// Reads a whole file from a solved ref.
    pub async fn read_file(&self, reference: &str, path: &str) -> Result<Vec<u8>, BridgeError> {
        let req = pb::gateway::ReadFileRequest {
            r#ref: reference.to_string(),
            file_path: path.to_string(),
            range: None,
        };
        let mut client = self.client.clone();
        let read = client.read_file(req);
        Ok(self
            .timed(|| format!("ReadFile {path}"), read)
            .await?
            .into_inner()
            .data)
    }

    /// Like [`Bridge::read_file`], but a missing file gives `None`.
    pub async fn read_file_opt(
        &self,
        reference: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, BridgeError> {
        match self.read_file(reference, path).await {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stats a path in a solved ref.
    pub async fn stat_file(
        &self,
        reference: &str,
        path: &str,
    ) -> Result<pb::fsutil::Stat, BridgeError> {
        let req = pb::gateway::StatFileRequest {
            r#ref: reference.to_string(),
            path: path.to_string(),
        };
        let mut client = self.client.clone();
        let stat = client.stat_file(req);
        self.timed(|| format!("StatFile {path}"), stat)
            .await?
            .into_inner()
            .stat
            .ok_or_else(|| BridgeError::Protocol(format!("StatFile {path:?} returned no stat")))
    }

    /// Resolves an image to its manifest digest (may be empty with Docker's image store) and raw config JSON.
    pub async fn resolve_image_config(
        &self,
        reference: &str,
        platform: Option<pb::llb::Platform>,
        resolve_mode: ResolveMode,
        log_name: &str,
    ) -> Result<(String, Vec<u8>), BridgeError> {
        let req = pb::gateway::ResolveImageConfigRequest {
            r#ref: reference.to_string(),
            platform,
            resolve_mode: resolve_mode.as_str().to_string(),
            log_name: log_name.to_string(),
            ..Default::default()
        };
        self.resolve(req).await
    }

    /// Resolves an image in a client-shared OCI layout (`ResolverType` 1 with the store and its
    /// session, as BuildKit's own clients send it); returns the manifest digest and config JSON.
    pub async fn resolve_oci_layout_config(
        &self,
        reference: &str,
        platform: Option<pb::llb::Platform>,
        store: &str,
        session: &str,
        log_name: &str,
    ) -> Result<(String, Vec<u8>), BridgeError> {
        let req = pb::gateway::ResolveImageConfigRequest {
            r#ref: reference.to_string(),
            platform,
            log_name: log_name.to_string(),
            resolver_type: RESOLVER_TYPE_OCI_LAYOUT,
            session_id: session.to_string(),
            store_id: store.to_string(),
            ..Default::default()
        };
        self.resolve(req).await
    }

    /// One `ResolveImageConfig` call: the manifest digest and the raw config JSON.
    async fn resolve(
        &self,
        req: pb::gateway::ResolveImageConfigRequest,
    ) -> Result<(String, Vec<u8>), BridgeError> {
        let what = format!("ResolveImageConfig {}", req.r#ref);
        let mut client = self.client.clone();
        let resolve = client.resolve_image_config(req);
        let resp = self.timed(|| what, resolve).await?.into_inner();
        Ok((resp.digest, resp.config))
    }

    /// Sends a warning if the daemon has `gateway.warnings` (v0.10+); otherwise does nothing.
    pub async fn warn(&self, req: pb::gateway::WarnRequest) -> Result<(), BridgeError> {
        if !self.caps.has_gateway("gateway.warnings") {
            return Ok(());
        }
        let mut client = self.client.clone();
        let warn = client.warn(req);
        self.timed(|| "Warn".to_string(), warn).await?;
        Ok(())
    }

    /// The frontend inputs (empty when the daemon lacks `frontend.inputs`).
    pub async fn inputs(&self) -> Result<BTreeMap<String, pb::llb::Definition>, BridgeError> {
        if !self.caps.has_gateway("frontend.inputs") {
            return Ok(BTreeMap::new());
        }
        Ok(self
            .client
            .clone()
            .inputs(pb::gateway::InputsRequest {})
            .await?
            .into_inner()
            .definitions)
    }

    /// Hands the build result to BuildKit. Call once, then exit 0.
    pub async fn return_result(&self, result: pb::gateway::Result) -> Result<(), BridgeError> {
        let req = pb::gateway::ReturnRequest {
            result: Some(result),
            error: None,
        };
        self.timed(|| "Return".to_string(), self.client.clone().r#return(req))
            .await?;
        Ok(())
    }

    /// Reports the build as failed with `status`. Call once, then exit 0.
    pub async fn return_error(&self, status: pb::rpc::Status) -> Result<(), BridgeError> {
        let req = pb::gateway::ReturnRequest {
            result: None,
            error: Some(status),
        };
        self.timed(|| "Return".to_string(), self.client.clone().r#return(req))
            .await?;
        Ok(())
    }
}

fn single_ref(resp: pb::gateway::SolveResponse) -> Result<String, BridgeError> {
    use pb::gateway::result::Result as R;
    match resp.result.and_then(|r| r.result) {
        Some(R::Ref(r)) => Ok(r.id),
        Some(R::RefDeprecated(id)) => Ok(id),
        Some(R::Refs(_)) | Some(R::RefsDeprecated(_)) => Err(BridgeError::Protocol(
            "Solve returned several refs where one was expected".to_string(),
        )),
        None => Ok(resp.r#ref),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::gateway::result::Result as R;

    fn resp(r: Option<R>, legacy: &str) -> pb::gateway::SolveResponse {
        pb::gateway::SolveResponse {
            r#ref: legacy.into(),
            result: Some(pb::gateway::Result {
                result: r,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn result_forms() {
        let r = R::Ref(pb::gateway::Ref {
            id: "a".into(),
            def: None,
        });
        assert_eq!(single_ref(resp(Some(r), "")).ok().as_deref(), Some("a"));
        assert_eq!(
            single_ref(resp(Some(R::RefDeprecated("b".into())), ""))
                .ok()
                .as_deref(),
            Some("b")
        );
        assert_eq!(single_ref(resp(None, "c")).ok().as_deref(), Some("c"));
        assert_eq!(single_ref(resp(None, "")).ok().as_deref(), Some(""));
        let many = R::Refs(pb::gateway::RefMap::default());
        assert!(matches!(
            single_ref(resp(Some(many), "")),
            Err(BridgeError::Protocol(_))
        ));
    }

    #[test]
    fn not_found_detection() {
        let e = BridgeError::Status(tonic::Status::unknown(
            "open /etc/os-release: no such file or directory",
        ));
        assert!(e.is_not_found());
        assert!(BridgeError::Status(tonic::Status::not_found("x")).is_not_found());
        assert!(!BridgeError::Status(tonic::Status::unknown("boom")).is_not_found());
    }
}
