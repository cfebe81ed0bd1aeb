//! The outputs the core writes itself (as `sniffer/output/` in Python): conn.log rows, so a
//! row does not cost microseconds of Python.

pub mod json;
pub mod zeek;

/// `n` in decimal. Most counts in a row are single digits (a flood's records: one packet, no
/// bytes), which skip itoa's buffer and the copy out of it.
pub fn push_uint(out: &mut String, n: u64) {
    if n < 10 {
        out.push(char::from(b'0' + n as u8));
    } else {
        out.push_str(itoa::Buffer::new().format(n));
    }
}

/// `push_uint`, into bytes.
pub fn push_uint_bytes(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}
