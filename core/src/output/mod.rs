//! The outputs the core writes itself (as `sniffer/output/` in Python): conn.log rows, so a
//! row does not cost microseconds of Python.

pub mod json;
pub mod zeek;
