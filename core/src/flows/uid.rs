//! Connection uids in Zeek's style ("C" and 16 base62 digits), exactly as
//! `sniffer/flows/uid.py` makes them: a BLAKE2b-128 hash of the Python `repr` of
//! `(key, ts, serial)`, each digest byte one digit (`byte % 62`).
//!
//! Why a repr: the Python engine defined the uids that way, and a capture must keep its uids
//! whichever engine reads it (tools and notes point at records by uid). So this module writes
//! the repr Python would write for the key shapes the flow table uses (tuples of raw address
//! bytes, ints and the word "tunnel") and for a float timestamp (shortest round-trip digits,
//! Python's `repr` layout), and tests hold it to vectors made by the Python code.

use std::fmt::Write as _;

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;

const HEX: &[u8; 16] = b"0123456789abcdef";
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// One item of a connection key.
#[derive(Clone, Copy, Debug)]
pub enum KeyPart<'a> {
    Bytes(&'a [u8]),
    Int(i64),
    Str(&'a str),
}

/// `make_uid(key, ts, serial)`.
pub fn make_uid(key: &[KeyPart<'_>], ts: f64, serial: u64) -> String {
    let text = uid_input(key, ts, serial);
    let mut digest = [0u8; 16];
    // A 16-byte output is always accepted by BLAKE2b (1 to 64).
    if let Ok(mut h) = Blake2bVar::new(16) {
        h.update(text.as_bytes());
        let _ = h.finalize_variable(&mut digest);
    }
    let mut uid = String::with_capacity(17);
    uid.push('C');
    for b in digest {
        uid.push(char::from(
            ALPHABET.get(usize::from(b % 62)).copied().unwrap_or(b'0'),
        ));
    }
    uid
}

/// The text hashed: Python's `repr((key, ts, serial))`.
pub fn uid_input(key: &[KeyPart<'_>], ts: f64, serial: u64) -> String {
    let mut s = String::with_capacity(96);
    s.push_str("((");
    for (i, part) in key.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        match part {
            KeyPart::Bytes(b) => bytes_repr(&mut s, b),
            KeyPart::Int(n) => s.push_str(itoa::Buffer::new().format(*n)),
            KeyPart::Str(t) => {
                s.push('\'');
                s.push_str(t); // (the key's words are plain ASCII without quotes)
                s.push('\'');
            }
        }
    }
    if key.len() == 1 {
        s.push(','); // a 1-tuple
    }
    s.push_str("), ");
    float_repr(&mut s, ts);
    s.push_str(", ");
    s.push_str(itoa::Buffer::new().format(serial));
    s.push(')');
    s
}

/// Python's `repr(bytes)`: single quotes unless the bytes hold a `'` and no `"`; `\t \n \r`,
/// `\\`, the quote in use, and `\xNN` for the rest outside printable ASCII.
pub fn bytes_repr(s: &mut String, b: &[u8]) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    s.push('b');
    s.push(quote);
    for &c in b {
        match c {
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\\' => s.push_str("\\\\"),
            _ if char::from(c) == quote => {
                s.push('\\');
                s.push(quote);
            }
            0x20..=0x7e => s.push(char::from(c)),
            _ => {
                s.push_str("\\x");
                s.push(char::from(
                    HEX.get(usize::from(c >> 4)).copied().unwrap_or(b'0'),
                ));
                s.push(char::from(
                    HEX.get(usize::from(c & 15)).copied().unwrap_or(b'0'),
                ));
            }
        }
    }
    s.push(quote);
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is from -4 to 16 (with ".0" when integral), else `d.ddde+XX`.
pub fn float_repr(s: &mut String, x: f64) {
    if x.is_nan() {
        s.push_str("nan");
        return;
    }
    if x.is_infinite() {
        s.push_str(if x < 0.0 { "-inf" } else { "inf" });
        return;
    }
    // Ryu's digits are the shortest that round-trip and, among those, the nearest: what
    // Python's repr (dtoa mode 0) writes. Its layout differs, so only the digits and the
    // decimal point's place are taken from it.
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(x.abs()).as_bytes();
    let (mantissa, exp) = match text.iter().position(|c| *c == b'e' || *c == b'E') {
        Some(i) => (
            text.get(..i).unwrap_or_default(),
            std::str::from_utf8(text.get(i + 1..).unwrap_or_default())
                .ok()
                .and_then(|e| e.parse::<i32>().ok())
                .unwrap_or(0),
        ),
        None => (text, 0),
    };
    let int_len = mantissa
        .iter()
        .position(|c| *c == b'.')
        .unwrap_or(mantissa.len());
    let mut digits = [0u8; 24]; // (ryu writes at most 17 significant digits)
    let mut n = 0usize;
    let mut decpt = int_len as i32 + exp; // digits d1 d2 ... mean 0.d1d2... x 10^decpt
    for &c in mantissa.iter().filter(|c| c.is_ascii_digit()) {
        if n == 0 && c == b'0' {
            decpt -= 1; // a leading zero
            continue;
        }
        if let Some(d) = digits.get_mut(n) {
            *d = c;
            n += 1;
        }
    }
    while n > 0 && digits.get(n - 1) == Some(&b'0') {
        n -= 1;
    }
    if n == 0 {
        if let Some(d) = digits.get_mut(0) {
            *d = b'0'; // zero: "0.0"
        }
        n = 1;
        decpt = 1;
    }
    let digits = std::str::from_utf8(digits.get(..n).unwrap_or_default()).unwrap_or("0");
    if x.is_sign_negative() {
        s.push('-');
    }
    if decpt > -4 && decpt <= 16 {
        let n = digits.len() as i32;
        if decpt <= 0 {
            s.push_str("0.");
            for _ in 0..-decpt {
                s.push('0');
            }
            s.push_str(digits);
        } else if decpt >= n {
            s.push_str(digits);
            for _ in 0..(decpt - n) {
                s.push('0');
            }
            s.push_str(".0");
        } else if let Some((int, frac)) = digits.split_at_checked(decpt as usize) {
            s.push_str(int);
            s.push('.');
            s.push_str(frac);
        }
    } else {
        let (first, rest) = digits.split_at_checked(1).unwrap_or((digits, ""));
        s.push_str(first);
        if !rest.is_empty() {
            s.push('.');
            s.push_str(rest);
        }
        let e = decpt - 1;
        let _ = write!(s, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod vectors {
        use super::KeyPart;
        include!("uid_vectors.rs");
    }

    #[test]
    fn matches_the_python_reference() {
        for &(key, bits, serial, repr, uid) in vectors::VECTORS {
            let ts = f64::from_bits(bits);
            assert_eq!(uid_input(key, ts, serial), repr);
            assert_eq!(make_uid(key, ts, serial), uid, "{repr}");
        }
    }

    #[test]
    fn random_floats_as_python_writes_them() {
        for &(bits, text) in vectors::FLOATS {
            let mut s = String::new();
            float_repr(&mut s, f64::from_bits(bits));
            assert_eq!(s, text, "{bits:#x}");
        }
    }

    #[test]
    fn floats_as_python_writes_them() {
        for (x, text) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e17, "1e+17"),
            (123.0, "123.0"),
            (1.5e300, "1.5e+300"),
            (f64::INFINITY, "inf"),
        ] {
            let mut s = String::new();
            float_repr(&mut s, x);
            assert_eq!(s, text);
        }
    }
}
