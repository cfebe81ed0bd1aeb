//! The outputs the core writes itself (as `sniffer/output/` in Python): conn.log rows, so a
//! row does not cost microseconds of Python; and the number text they share with uid inputs.

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

/// `x` as whole seconds and microseconds, when it is the double nearest to a whole number of
/// microseconds (every timestamp of a microsecond capture) and from 1e-4 to below 2^33 s
/// (where doubles lie less than 1e-6 apart). Then `repr(x)` is that decimal without its
/// trailing zeros: it round-trips, and no other decimal of at most 6 places does (two would
/// lie within one spacing of x), so none is shorter. And `%.6f` is that decimal: x lies
/// within half a spacing of it, less than half a microsecond. Ryu's search for the shortest
/// digits, or the exact `%.6f`, costs several times this check.
pub fn whole_micros(x: f64) -> Option<(u64, u32)> {
    if !(1e-4..8_589_934_592.0).contains(&x) {
        return None;
    }
    // (rounded by truncation: f64::round is a libm call without SSE4.1)
    let n = (x * 1e6 + 0.5) as u64;
    // (n is below 2^53, so exact as a double; the division rounds once, to the nearest double)
    if n as f64 / 1e6 != x {
        return None;
    }
    Some((n / 1_000_000, (n % 1_000_000) as u32))
}
