//! The one harness of sysfile's integration tests, a dev-dependency of the main package.
//!
//! * `harness` — the real Docker daemon: skipping (`SYSFILE_E2E=required` makes a skip a
//!   failure), builds, containers and images removed on drop, boot checks, `tempdir`.
//! * `engines` — the engine and host matrices beside the main daemon.
//! * `leaks` — scans of saved images and caches for secrets.
//!
//! See `tests/README.md` for which test file gets which kind of test.

pub mod engines;
pub mod harness;
pub mod leaks;
