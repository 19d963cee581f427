//! sysfile: a BuildKit frontend that compiles a declarative Sysfile into LLB for system containers.
//!
//! The stages, in order: `spec` (TOML text to a validated `model`), `plan`
//! (the build in sysfile's own vocabulary), `llb` (canonical BuildKit ops) and
//! `gateway` (the only part that does I/O with BuildKit). See ARCHITECTURE.md.

pub mod audit;
pub mod cli;
pub mod compile;
pub mod contract;
pub mod diag;
pub mod distro;
pub mod frontend;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod image;
pub mod lint;
pub mod llb;
pub mod lower;
pub mod model;
pub mod network;
pub mod outline;
pub mod pb;
pub mod plan;
pub mod platform;
pub mod reference;
pub mod report;
pub mod runtime;
pub mod source_range;
pub mod spec;
pub mod verify;
