//! sniffer's compiled core: the per-packet path, one module per stage (as `sniffer/` in
//! Python): `capture` walks the capture formats, `decode` turns frames into IP packets,
//! `tunnels` opens the tunnels, `flows` tracks the connections (the table, Zeek's TCP machine,
//! uids, Community ID, records), `output` writes conn.log rows, and `engine` runs them all:
//! frames in, events out. `shard` picks a frame's worker for `read --workers`; `state` is
//! the format of the engine state one engine exports and another takes over.
//!
//! The stages are plain Rust usable without Python (tests, the fuzz targets in `fuzzing`);
//! `python` is the thin PyO3 boundary built into `sniffer._core`.

pub mod capture;
pub mod decode;
pub mod engine;
pub mod flows;
pub mod fuzzing;
pub mod output;
pub mod shard;
pub mod state;
pub mod tunnels;

#[cfg(feature = "python")]
mod python;
