//! conn.log rows in Zeek's ASCII (TSV) layout, byte for byte as `sniffer/output/zeek.py`'s
//! `format_row` writes Zeek's fields and the Community ID (the default columns):
//! time/interval as `%.6f`, bool `T`/`F`, unset `-`, empty string or set `(empty)`, set
//! elements joined by `,`, a string equal to `-` or `(empty)` with its first character
//! escaped, backslash, control characters (C0, DEL, C1) and, inside sets, `,` as `\xHH`, and a
//! row that would start with `#` escaped so no reader takes it for a header.

use std::fmt::Write as _;

use super::{push_uint, whole_micros};
use crate::flows::conn::ConnRecord;

pub const SEPARATOR: char = '\t';
pub const SET_SEPARATOR: char = ',';
pub const EMPTY_FIELD: &str = "(empty)";
pub const UNSET_FIELD: &str = "-";

/// One row's fields, borrowed: from a [`ConnRecord`] (`ConnRecord::row`), or straight from a
/// connection of the flow table, whose rows then cost no allocation of their own.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub ts: f64,
    pub uid: &'a str,
    pub orig_h: &'a str,
    pub orig_p: u16,
    pub resp_h: &'a str,
    pub resp_p: u16,
    pub proto: &'a str,
    pub ip_proto: u8,
    pub service: Option<&'a str>,
    pub duration: Option<f64>,
    pub orig_bytes: Option<u64>,
    pub resp_bytes: Option<u64>,
    pub conn_state: &'a str,
    pub local_orig: Option<bool>,
    pub local_resp: Option<bool>,
    pub missed_bytes: u64,
    pub history: &'a str,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub tunnel_parents: &'a [String],
    pub community_id: Option<&'a str>,
}

/// Append one data line (no newline) for `c` to `out`.
pub fn write_row(out: &mut String, c: &ConnRecord) {
    write(out, &c.row());
}

/// Append one data line (no newline) for `c` to `out`.
pub fn write(out: &mut String, c: &Row<'_>) {
    write_text::<true>(out, c);
}

/// `write`, for the rows the flow table makes: their text fields are the engine's own making
/// (a base62 uid, addresses as inet_ntop writes them, fixed protocol and state names, history
/// letters, a base64 Community ID), none of which Zeek's rendering changes, so they are not
/// scanned for it (a record each: in a flood, millions). Debug builds (the tests, the fuzz
/// targets) check that against `write`.
pub fn write_made(out: &mut String, c: &Row<'_>) {
    let start = out.len();
    write_text::<false>(out, c);
    debug_assert!({
        let mut checked = String::new();
        write(&mut checked, c);
        out.get(start..) == Some(checked.as_str())
    });
}

/// One data line; `ESCAPE`: text fields rendered as Zeek does (else copied as they are).
fn write_text<const ESCAPE: bool>(out: &mut String, c: &Row<'_>) {
    let start = out.len();
    time(out, Some(c.ts));
    tab(out);
    string::<ESCAPE>(out, Some(c.uid), None);
    tab(out);
    string::<ESCAPE>(out, Some(c.orig_h), None);
    out.push('\t');
    push_uint(out, c.orig_p.into());
    out.push('\t');
    string::<ESCAPE>(out, Some(c.resp_h), None);
    out.push('\t');
    push_uint(out, c.resp_p.into());
    out.push('\t');
    string::<ESCAPE>(out, Some(c.proto), None);
    tab(out);
    string::<ESCAPE>(out, c.service, None);
    tab(out);
    time(out, c.duration);
    tab(out);
    count(out, c.orig_bytes);
    tab(out);
    count(out, c.resp_bytes);
    tab(out);
    string::<ESCAPE>(out, Some(c.conn_state), None);
    tab(out);
    boolean(out, c.local_orig);
    tab(out);
    boolean(out, c.local_resp);
    out.push('\t');
    push_uint(out, c.missed_bytes);
    out.push('\t');
    // Zeek leaves an empty history (and an empty tunnel_parents) unset, not empty.
    string::<ESCAPE>(out, (!c.history.is_empty()).then_some(c.history), None);
    for n in [c.orig_pkts, c.orig_ip_bytes, c.resp_pkts, c.resp_ip_bytes] {
        out.push('\t');
        push_uint(out, n);
    }
    out.push('\t');
    if c.tunnel_parents.is_empty() {
        out.push_str(UNSET_FIELD);
    } else {
        for (i, t) in c.tunnel_parents.iter().enumerate() {
            if i > 0 {
                out.push(SET_SEPARATOR);
            }
            string::<ESCAPE>(out, Some(t), Some(SET_SEPARATOR));
        }
    }
    out.push('\t');
    push_uint(out, c.ip_proto.into());
    out.push('\t');
    string::<ESCAPE>(out, c.community_id, None);
    if out.get(start..).is_some_and(|row| row.starts_with('#')) {
        out.replace_range(start..start + 1, "\\x23");
    }
}

fn tab(out: &mut String) {
    out.push(SEPARATOR);
}

fn time(out: &mut String, v: Option<f64>) {
    match v {
        Some(x) => fixed6(out, x),
        None => out.push_str(UNSET_FIELD),
    }
}

/// `%.6f`: the 6-decimal value nearest to `x`'s exact binary value, ties to even (C's printf,
/// Python's format and Rust's `{:.6}` alike). Written out for the usual range because
/// core::fmt's exact mode costs more than the rest of a row; the tests hold it to `{:.6}`.
fn fixed6(out: &mut String, x: f64) {
    if let Some((int, frac)) = whole_micros(x) {
        // (the usual time: a whole number of microseconds, which is its own `%.6f`)
        push_uint(out, int);
        push_micros6(out, frac.into());
        return;
    }
    if !x.is_finite() || x.abs() >= 1e15 {
        let _ = write!(out, "{x:.6}");
        return;
    }
    let bits = x.to_bits();
    let biased = i32::try_from((bits >> 52) & 0x7ff).unwrap_or(0);
    let frac = bits & ((1 << 52) - 1);
    // x = m * 2^e exactly
    let (m, e) = if biased == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), biased - 1075)
    };
    let scaled = u128::from(m) * 1_000_000;
    let micros = if e >= 0 {
        scaled << e.unsigned_abs() // (|x| < 1e15: e is at most -3 here, kept for clarity)
    } else {
        let sh = e.unsigned_abs();
        if sh >= 128 {
            0 // below 2^-54: rounds to zero (scaled < 2^73 < half a unit)
        } else {
            let q = scaled >> sh;
            let r = scaled - (q << sh);
            let half = 1u128 << (sh - 1);
            if r > half || (r == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        }
    };
    if x.is_sign_negative() {
        out.push('-');
    }
    // (|x| < 1e15: the micros fit 70 bits; in 64, the usual case, no 128-bit division and
    // no 128-bit formatting)
    let f = match u64::try_from(micros) {
        Ok(m) => {
            out.push_str(itoa::Buffer::new().format(m / 1_000_000));
            m % 1_000_000
        }
        Err(_) => {
            out.push_str(itoa::Buffer::new().format(micros / 1_000_000));
            u64::try_from(micros % 1_000_000).unwrap_or(0)
        }
    };
    push_micros6(out, f);
}

/// `.` and `f` (below a million) as six digits.
fn push_micros6(out: &mut String, f: u64) {
    out.push('.');
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(f);
    for _ in digits.len()..6 {
        out.push('0');
    }
    out.push_str(digits);
}

fn count(out: &mut String, v: Option<u64>) {
    match v {
        Some(n) => push_uint(out, n),
        None => out.push_str(UNSET_FIELD),
    }
}

fn boolean(out: &mut String, v: Option<bool>) {
    out.push_str(match v {
        Some(true) => "T",
        Some(false) => "F",
        None => UNSET_FIELD,
    });
}

/// Zeek's string rendering (`_format_string` in Python), `extra` escaped too (in sets: `,`);
/// without `ESCAPE`, a text known to need none is copied as it is.
fn string<const ESCAPE: bool>(out: &mut String, v: Option<&str>, extra: Option<char>) {
    let Some(s) = v else {
        out.push_str(UNSET_FIELD);
        return;
    };
    if s.is_empty() {
        out.push_str(EMPTY_FIELD);
        return;
    }
    if !ESCAPE {
        out.push_str(s);
        return;
    }
    // The common case: printable ASCII without a backslash (or `extra`) goes out as it is.
    // (a fold without early exit: the compiler checks many bytes at once)
    let plain = |ok: bool, b: &u8| ok & (0x20..0x7f).contains(b) & (*b != b'\\');
    if s.as_bytes().iter().fold(true, plain)
        && extra.is_none_or(|e| !s.contains(e))
        && s != UNSET_FIELD
        && s != EMPTY_FIELD
    {
        out.push_str(s);
        return;
    }
    let mut chars = s.chars();
    if s == UNSET_FIELD || s == EMPTY_FIELD {
        if let Some(first) = chars.next() {
            let _ = write!(out, "\\x{:02x}", u32::from(first));
        }
    }
    for ch in chars {
        let o = u32::from(ch);
        if ch == '\\' || Some(ch) == extra || o < 0x20 || (0x7f..0xa0).contains(&o) {
            let _ = write!(out, "\\x{o:02x}");
        } else {
            out.push(ch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed6_is_exact() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut values = vec![
            0.0,
            -0.0,
            0.0078125,
            -1e-9,
            2.5e-6,
            1e15 - 1.0,
            5e-7,
            1.5e-6,
        ];
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                values.push(f);
                values.push(f.abs() % 2e9); // timestamps and durations
                values.push((x % 4_000_000_000_000) as f64 / 1e6);
                // whole microseconds up to past the shortcut's bound, and their neighbours
                let t = (x % 9_000_000_000_000_000) as f64 / 1e6;
                values.extend([
                    t,
                    f64::from_bits(t.to_bits() + 1),
                    f64::from_bits(t.to_bits() - 1),
                ]);
            }
        }
        for v in values {
            let mut s = String::new();
            fixed6(&mut s, v);
            assert_eq!(s, format!("{v:.6}"), "{v:e}");
        }
    }

    mod vectors {
        use crate::flows::conn::ConnRecord;
        include!("zeek_vectors.rs");
    }

    #[test]
    fn made_rows_match_the_escaping_writer() {
        // (the vectors' rows whose text needs no escaping, their times varied at random: whole
        // microseconds, other doubles, tiny and large)
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut checked = 0;
        for (rec, _) in vectors::vectors() {
            let row = rec.row();
            let (mut plain, mut made) = (String::new(), String::new());
            write_text::<false>(&mut plain, &row);
            write(&mut made, &row);
            if plain != made {
                continue;
            }
            for _ in 0..200 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let micros = (x >> 11) % 9_000_000_000_000_000;
                let ts = match x % 4 {
                    0 => micros as f64 / 1e6,
                    1 => f64::from_bits((micros as f64 / 1e6).to_bits() ^ 1),
                    2 => (x % 200_000) as f64 / 1e10,
                    _ => 8_589_934_592.0 + (x % 1000) as f64 / 1e3,
                };
                let row = Row {
                    ts,
                    duration: Some(ts / 7.0),
                    ..row
                };
                let (mut ours, mut theirs) = (String::new(), String::new());
                write_made(&mut ours, &row);
                write(&mut theirs, &row);
                assert_eq!(ours, theirs);
                checked += 1;
            }
        }
        assert!(checked >= 2000, "{checked}");
    }

    #[test]
    fn rows_match_the_python_writer() {
        for (rec, row) in vectors::vectors() {
            let mut out = String::new();
            write_row(&mut out, &rec);
            assert_eq!(out, row, "{rec:?}");
        }
    }
}
