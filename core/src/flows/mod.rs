//! The flows stage (as `sniffer/flows/` in Python): connection keys, Community ID, uids, the
//! table and its index, Zeek's TCP state machine. Ported one piece at a time, each held to the
//! Python reference by tests.

pub mod community_id;
pub mod conn;
pub mod index;
pub mod table;
pub mod tcp;
pub mod timers;
pub mod uid;
