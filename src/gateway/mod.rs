//! Everything that talks to BuildKit's `LLBBridge`: transport, options, caps, errors and the typed client.
//!
//! No build logic lives here. `fake` is an in-process BuildKit for tests, compiled only for them
//! (unit tests, and the integration tests through the `fake-buildkit` feature).

pub mod bridge;
pub mod caps;
pub mod contexts;
mod decode;
pub mod errors;
#[cfg(any(test, feature = "fake-buildkit"))]
pub mod fake;
pub mod options;
pub mod request;
pub mod transport;

pub use bridge::{Bridge, BridgeError, DebugSink, Pong};
pub use caps::{Caps, MissingCap};
pub use options::{FrontendOptions, ResolveMode};
pub use request::{BuildRequest, RequestError};
