//! The gRPC channel to BuildKit: cleartext HTTP/2 (prior knowledge) over the process's stdin/stdout.
//!
//! BuildKit's gateway serves `LLBBridge` on the frontend's stdio: stdin carries
//! server→client bytes, stdout client→server bytes. Nothing else may ever be
//! written to stdout; logs go to stderr. The `:authority` is ignored.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyhow::{Context as _, Result, bail};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;
use tonic::transport::{Channel, Endpoint, Uri};

use super::caps::Caps;
use crate::pb::gateway::llb_bridge_client::LlbBridgeClient;

/// 4 MiB: the request limit of BuildKit v0.13 and older (grpc-go defaults).
pub const LEGACY_REQUEST_LIMIT: usize = 4 << 20;
/// 16 MiB: BuildKit v0.14+ limit in both directions, and our encoding limit.
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;
/// Responses from older daemons are unlimited; accept up to 1 GiB.
pub const MAX_DECODING_SIZE: usize = 1 << 30;

/// The LLB cap used to tell v0.14+ daemons (16 MiB requests) from older ones (4 MiB).
pub const V0_14_MARKER_CAP: &str = "file.copy.alwaysreplaceexistingdestpaths";

static STDIO_CONNECTED: AtomicBool = AtomicBool::new(false);

/// stdin (read half) and stdout (write half) as one byte stream.
///
/// BuildKit hands the frontend two pipes; they are used non-blocking through
/// the reactor. Otherwise (a terminal, a socket, a file) tokio's blocking
/// stdio is used, whose pending stdin read can delay runtime shutdown; a
/// frontend should exit right after `Return` in any case.
enum Stdio {
    Pipes {
        stdin: pipe::Receiver,
        stdout: pipe::Sender,
    },
    Blocking {
        stdin: tokio::io::Stdin,
        stdout: tokio::io::Stdout,
    },
}

impl Stdio {
    /// Must run inside a tokio runtime with I/O enabled.
    fn open() -> Stdio {
        use std::os::fd::AsFd as _;
        let pipes = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .and_then(pipe::Receiver::from_owned_fd)
            .and_then(|stdin| {
                let stdout = std::io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .and_then(pipe::Sender::from_owned_fd)?;
                Ok(Stdio::Pipes { stdin, stdout })
            });
        pipes.unwrap_or_else(|_| Stdio::Blocking {
            stdin: tokio::io::stdin(),
            stdout: tokio::io::stdout(),
        })
    }
}

impl AsyncRead for Stdio {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stdio::Pipes { stdin, .. } => Pin::new(stdin).poll_read(cx, buf),
            Stdio::Blocking { stdin, .. } => Pin::new(stdin).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stdio {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stdio::Pipes { stdout, .. } => Pin::new(stdout).poll_write(cx, buf),
            Stdio::Blocking { stdout, .. } => Pin::new(stdout).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stdio::Pipes { stdout, .. } => Pin::new(stdout).poll_flush(cx),
            Stdio::Blocking { stdout, .. } => Pin::new(stdout).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stdio::Pipes { stdout, .. } => Pin::new(stdout).poll_shutdown(cx),
            Stdio::Blocking { stdout, .. } => Pin::new(stdout).poll_shutdown(cx),
        }
    }
}

/// Connects to BuildKit over stdin/stdout. Succeeds at most once per process.
pub async fn connect_stdio() -> Result<Channel> {
    if STDIO_CONNECTED.swap(true, Ordering::SeqCst) {
        bail!(
            "the BuildKit gateway connection over stdin/stdout was already opened; \
             it can be connected only once per process"
        );
    }
    let io = Stdio::open();
    connect_io(io)
        .await
        .context("connecting to BuildKit over stdin/stdout")
}

/// Connects a channel over any byte stream (stdio in production, an in-memory pipe in tests).
///
/// The stream is handed to the HTTP/2 client once; if the connection drops,
/// reconnecting fails instead of reusing a dead stream.
pub async fn connect_io<T>(io: T) -> Result<Channel>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let slot = Arc::new(Mutex::new(Some(io)));
    let connector = tower::service_fn(move |_: Uri| {
        let io = slot.lock().map(|mut s| s.take()).unwrap_or(None);
        async move {
            io.map(TokioIo::new).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the BuildKit gateway stream was already used; it cannot be reconnected",
                )
            })
        }
    });
    let channel = Endpoint::from_static("http://buildkit.gateway")
        .connect_with_connector(connector)
        .await
        .context("HTTP/2 handshake with BuildKit failed")?;
    Ok(channel)
}

/// The `LLBBridge` client with sysfile's message limits (decode ≥ 16 MiB, encode 16 MiB).
pub fn client(channel: Channel) -> LlbBridgeClient<Channel> {
    LlbBridgeClient::new(channel)
        .max_decoding_message_size(MAX_DECODING_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

/// The largest request the daemon accepts: 16 MiB from v0.14, else 4 MiB.
///
/// Approximation: daemons without the v0.14 LLB cap
/// `file.copy.alwaysreplaceexistingdestpaths` are treated as older.
pub fn request_size_limit(caps: &Caps) -> usize {
    if caps.has_llb(V0_14_MARKER_CAP) {
        MAX_MESSAGE_SIZE
    } else {
        LEGACY_REQUEST_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_limits_by_version() {
        assert_eq!(request_size_limit(&Caps::for_version(8)), 4 << 20);
        assert_eq!(request_size_limit(&Caps::for_version(13)), 4 << 20);
        assert_eq!(request_size_limit(&Caps::for_version(14)), 16 << 20);
    }

    #[tokio::test]
    async fn stdio_connects_only_once() {
        // Pretend the first connection happened; a second attempt must fail clearly
        // without touching the real stdin/stdout.
        STDIO_CONNECTED.store(true, Ordering::SeqCst);
        let err = connect_stdio()
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("only once"), "{err}");
    }
}
