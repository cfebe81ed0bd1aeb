//! sniffer's compiled core: the per-packet path, one module per stage (as `sniffer/` in
//! Python): `capture` walks the capture formats, `decode` turns frames into IP packets; flows
//! follow.
//!
//! The stages are plain Rust usable without Python (tests, fuzzing, the later decoder reads
//! the walk's frames in place); `python` is the thin PyO3 boundary built into `sniffer._core`.

pub mod capture;
pub mod decode;
pub mod engine;
pub mod flows;
pub mod fuzzing;
pub mod output;
pub mod shard;
pub mod tunnels;

#[cfg(feature = "python")]
mod python;
