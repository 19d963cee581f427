//! Everything that talks to BuildKit's `LLBBridge`: transport, options, caps, errors and the typed client.
//!
//! No build logic lives here. [`fake`] is an in-process BuildKit used by tests.

pub mod bridge;
pub mod caps;
pub mod contexts;
mod decode;
pub mod errors;
pub mod fake;
pub mod options;
pub mod request;
pub mod transport;

pub use bridge::{Bridge, BridgeError, Pong};
pub use caps::{Caps, MissingCap};
pub use options::{FrontendOptions, ResolveMode};
pub use request::{BuildRequest, RequestError};
