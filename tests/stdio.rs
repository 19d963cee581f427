//! End-to-end check of the stdin/stdout transport: this test re-runs itself as a child "frontend" whose stdio are pipes served by the fake BuildKit.
//!
//! `harness = false`: libtest would print to stdout, which must carry only HTTP/2.

use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::{Command, ExitCode, Stdio};
use std::task::{Context, Poll};

use sysfile::gateway::fake::FakeBuildkit;
use sysfile::gateway::{Bridge, Caps, errors, transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

const CHILD_ENV: &str = "SYSFILE_STDIO_TEST_CHILD";
/// Above the 4 MiB default of older daemons, below 16 MiB.
const BIG: usize = 5 << 20;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let child = std::env::var_os(CHILD_ENV).is_some();
    let run = || -> Res<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        if child {
            rt.block_on(frontend())
        } else {
            rt.block_on(driver())
        }
    };
    match run() {
        Ok(()) => {
            if !child {
                eprintln!("test stdio_transport ... ok");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "{} failed: {e}",
                if child {
                    "child frontend"
                } else {
                    "stdio_transport"
                }
            );
            ExitCode::FAILURE
        }
    }
}

/// The child: a minimal frontend on stdin/stdout.
async fn frontend() -> Res<()> {
    let channel = transport::connect_stdio().await?;
    if transport::connect_stdio().await.is_ok() {
        return Err("a second stdio connect succeeded".into());
    }
    let mut bridge = Bridge::new(transport::client(channel));
    let pong = bridge.ping().await?;
    let limit = transport::request_size_limit(&pong.caps);
    if limit != 16 << 20 {
        return Err(format!("unexpected request limit {limit}").into());
    }
    bridge
        .return_error(errors::plain_status("x".repeat(BIG)))
        .await?;
    Ok(())
}

/// The parent: serve the fake on the child's pipes and check what it returned.
async fn driver() -> Res<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let (Some(out), Some(inp)) = (child.stdout.take(), child.stdin.take()) else {
        return Err("child pipes missing".into());
    };
    let io = Pipes {
        r: pipe::Receiver::from_owned_fd(OwnedFd::from(out))?,
        w: pipe::Sender::from_owned_fd(OwnedFd::from(inp))?,
    };
    let fake = FakeBuildkit::new(Caps::for_version(32));
    let handle = fake.handle();
    let server = tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(
        fake.into_service(),
        tokio_stream::once(Ok::<_, std::io::Error>(io)),
    ));
    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await;
    server.abort();
    let status = waited.map_err(|_| "the child frontend did not exit after Return")???;
    if !status.success() {
        return Err(format!("child frontend exited with {status}").into());
    }
    let returned = handle
        .returned()
        .and_then(|r| r.error)
        .ok_or("no Return received")?;
    if returned.message.len() != BIG {
        return Err(format!("returned message has {} bytes", returned.message.len()).into());
    }
    Ok(())
}

struct Pipes {
    r: pipe::Receiver,
    w: pipe::Sender,
}

impl AsyncRead for Pipes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.r).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipes {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.w).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.w).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.w).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Pipes {
    type ConnectInfo = ();

    fn connect_info(&self) {}
}
