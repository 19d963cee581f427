//! In-process fake BuildKit.
