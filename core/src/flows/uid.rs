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

use blake2b_simd::many::{hash_many, HashManyJob};

use crate::output::{push_uint_bytes, whole_micros};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `\xNN` for every byte value (the bytes of addresses mostly take this form).
#[allow(clippy::indexing_slicing)] // (computed by the compiler: a bad index fails the build)
const ESCAPES: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [b'\\', b'x', HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

/// Each byte as `repr(bytes)` writes it inside single quotes (its text padded to 4 bytes, and
/// its length): the usual address is written by a copy of 4 bytes a byte, without a branch.
#[allow(clippy::indexing_slicing)] // (computed by the compiler: a bad index fails the build)
const IN_SINGLE_QUOTES: [([u8; 4], u8); 256] = {
    let mut t = [([0u8; 4], 4u8); 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b'\t' => (*b"\\t\0\0", 2),
            b'\n' => (*b"\\n\0\0", 2),
            b'\r' => (*b"\\r\0\0", 2),
            b'\\' => (*b"\\\\\0\0", 2),
            b'\'' => (*b"\\'\0\0", 2),
            c @ 0x20..=0x7e => ([c, 0, 0, 0], 1),
            _ => (ESCAPES[i], 4),
        };
        i += 1;
    }
    t
};
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
    let mut text = Vec::new();
    write_input(&mut text, key, ts, serial);
    let digest = blake2b_simd::Params::new().hash_length(16).hash(&text);
    Uid::of_digest(digest.as_bytes()).as_str().to_owned()
}

/// A uid's text on the stack ("C" and 16 base62 digits): a batch makes thousands, which the
/// rows only copy into their text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uid([u8; 17]);

impl Uid {
    /// A base62 digit per digest byte.
    fn of_digest(digest: &[u8]) -> Self {
        let mut text = [b'C'; 17];
        for (d, &b) in text.iter_mut().skip(1).zip(digest) {
            *d = ALPHABET.get(usize::from(b % 62)).copied().unwrap_or(b'0');
        }
        Uid(text)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default() // (ASCII by construction)
    }
}

/// Uids made together: their inputs written into one buffer and hashed several at a time
/// (BLAKE2b's SIMD "many" interface: four at once with AVX2, about twice the rate of one by
/// one). A round of evictions, or the end of input, makes thousands of records at once.
#[derive(Debug, Default)]
pub struct UidBatch {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl UidBatch {
    pub fn push(&mut self, key: &[KeyPart<'_>], ts: f64, serial: u64) {
        write_input(&mut self.text, key, ts, serial);
        self.ends.push(self.text.len());
    }

    /// The uids of the inputs pushed, in their order; the batch is empty again.
    pub fn finish(&mut self) -> Vec<Uid> {
        let mut params = blake2b_simd::Params::new();
        params.hash_length(16);
        let mut start = 0;
        let mut jobs: Vec<HashManyJob<'_>> = Vec::with_capacity(self.ends.len());
        for &end in &self.ends {
            let input = self.text.get(start..end).unwrap_or_default();
            jobs.push(HashManyJob::new(&params, input));
            start = end;
        }
        hash_many(jobs.iter_mut());
        let uids = jobs
            .iter()
            .map(|j| Uid::of_digest(j.to_hash().as_bytes()))
            .collect();
        self.text.clear();
        self.ends.clear();
        uids
    }
}

/// The text hashed: Python's `repr((key, ts, serial))`.
pub fn uid_input(key: &[KeyPart<'_>], ts: f64, serial: u64) -> String {
    let mut text = Vec::new();
    write_input(&mut text, key, ts, serial);
    String::from_utf8(text).unwrap_or_default() // (ASCII: escapes for the rest)
}

/// `uid_input`'s text, as bytes (this runs for every record: bytes, not chars).
fn write_input(s: &mut Vec<u8>, key: &[KeyPart<'_>], ts: f64, serial: u64) {
    s.reserve(256);
    s.extend_from_slice(b"((");
    for (i, part) in key.iter().enumerate() {
        if i > 0 {
            s.extend_from_slice(b", ");
        }
        match part {
            KeyPart::Bytes(b) => bytes_repr(s, b),
            KeyPart::Int(n) => match u64::try_from(*n) {
                Ok(n) => push_uint_bytes(s, n),
                Err(_) => s.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            },
            KeyPart::Str(t) => {
                s.push(b'\'');
                s.extend_from_slice(t.as_bytes()); // (the key's words: ASCII, no quotes)
                s.push(b'\'');
            }
        }
    }
    if key.len() == 1 {
        s.push(b','); // a 1-tuple
    }
    s.extend_from_slice(b"), ");
    let mut buf = ryu::Buffer::new();
    if let Some((int, frac)) = whole_micros(ts) {
        push_micros(s, int, frac);
    } else if let Some(text) = ryu_as_python(&mut buf, ts) {
        s.extend_from_slice(text.as_bytes());
    } else {
        let mut text = String::new();
        float_repr(&mut text, ts);
        s.extend_from_slice(text.as_bytes());
    }
    s.extend_from_slice(b", ");
    push_uint_bytes(s, serial);
    s.push(b')');
}

/// Python's `repr(bytes)`: single quotes unless the bytes hold a `'` and no `"`; `\t \n \r`,
/// `\\`, the quote in use, and `\xNN` for the rest outside printable ASCII.
pub fn bytes_repr(s: &mut Vec<u8>, b: &[u8]) {
    if !b.contains(&b'\'') {
        // (the usual case: single quotes, each byte a fixed copy from the table)
        s.extend_from_slice(b"b'");
        for &c in b {
            let (text, n) = IN_SINGLE_QUOTES
                .get(usize::from(c))
                .copied()
                .unwrap_or_default();
            s.extend_from_slice(&text);
            s.truncate(s.len() - 4 + usize::from(n));
        }
        s.push(b'\'');
        return;
    }
    let quote = if !b.contains(&b'"') { b'"' } else { b'\'' };
    s.push(b'b');
    s.push(quote);
    for &c in b {
        match c {
            b'\t' => s.extend_from_slice(b"\\t"),
            b'\n' => s.extend_from_slice(b"\\n"),
            b'\r' => s.extend_from_slice(b"\\r"),
            b'\\' => s.extend_from_slice(b"\\\\"),
            _ if c == quote => s.extend_from_slice(&[b'\\', quote]),
            0x20..=0x7e => s.push(c),
            _ => s.extend_from_slice(ESCAPES.get(usize::from(c)).unwrap_or(&[0; 4])),
        }
    }
    s.push(quote);
}

/// `int.frac` as `repr` writes it: the microseconds without trailing zeros, at least one digit.
fn push_micros(s: &mut Vec<u8>, int: u64, frac: u32) {
    push_uint_bytes(s, int);
    let mut digits = [b'.', b'0', b'0', b'0', b'0', b'0', b'0'];
    let mut f = frac;
    for d in digits.iter_mut().skip(1).rev() {
        *d = b'0' + (f % 10) as u8;
        f /= 10;
    }
    let keep = 1 + digits
        .iter()
        .skip(1)
        .rposition(|d| *d != b'0')
        .map_or(1, |i| i + 1);
    s.extend_from_slice(digits.get(..keep).unwrap_or(b".0"));
}

/// `repr(x)` as Ryu writes it, where that is Python's layout: both write fixed notation from
/// 1e-4 (Ryu from 1e-5) to below 1e16, every timestamp among them. None elsewhere.
fn ryu_as_python(buf: &mut ryu::Buffer, x: f64) -> Option<&str> {
    (x == 0.0 || (1e-4..1e16).contains(&x.abs())).then(|| buf.format_finite(x))
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
    if let Some((int, frac)) = whole_micros(x) {
        let mut text = Vec::with_capacity(24);
        push_micros(&mut text, int, frac);
        s.push_str(std::str::from_utf8(&text).unwrap_or_default()); // (ASCII digits)
        return;
    }
    // Ryu's digits are the shortest that round-trip and, among those, the nearest: what
    // Python's repr (dtoa mode 0) writes. Where its layout differs from Python's, only the
    // digits and the decimal point's place are taken from it.
    let mut buf = ryu::Buffer::new();
    if let Some(text) = ryu_as_python(&mut buf, x) {
        s.push_str(text);
        return;
    }
    let text = buf.format_finite(x.abs());
    let text = text.as_bytes();
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

    /// Made together, the same uids as one by one (the batch's texts and jobs line up).
    #[test]
    fn a_batch_makes_the_same_uids() {
        let mut batch = UidBatch::default();
        for &(key, bits, serial, _, _) in vectors::VECTORS {
            batch.push(key, f64::from_bits(bits), serial);
        }
        let uids: Vec<&str> = vectors::VECTORS.iter().map(|v| v.4).collect();
        let made = batch.finish();
        assert_eq!(made.iter().map(Uid::as_str).collect::<Vec<_>>(), uids);
        assert!(batch.finish().is_empty());
    }

    #[test]
    fn random_floats_as_python_writes_them() {
        for &(bits, text) in vectors::FLOATS {
            let mut s = String::new();
            float_repr(&mut s, f64::from_bits(bits));
            assert_eq!(s, text, "{bits:#x}");
        }
    }

    /// The table's bytes are Python's `repr`, as the rule written out byte by byte has them.
    #[test]
    fn bytes_as_python_writes_them() {
        let by_rule = |b: &[u8]| {
            let q = if b.contains(&b'\'') && !b.contains(&b'"') {
                '"'
            } else {
                '\''
            };
            let mut t = format!("b{q}");
            for &c in b {
                match c {
                    b'\t' => t.push_str("\\t"),
                    b'\n' => t.push_str("\\n"),
                    b'\r' => t.push_str("\\r"),
                    b'\\' => t.push_str("\\\\"),
                    _ if char::from(c) == q => t.extend(['\\', q]),
                    0x20..=0x7e => t.push(char::from(c)),
                    _ => t.push_str(&format!("\\x{c:02x}")),
                }
            }
            t.push(q);
            t
        };
        let mut cases: Vec<Vec<u8>> = (0..=255u8).map(|c| vec![c]).collect();
        cases.extend((0..=255u8).map(|c| vec![c, b'\'', c, b'"']));
        cases.extend((0..=255u8).map(|c| vec![b'\'', c, 0x27, 0x7f]));
        let mut x = 7u32;
        for _ in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = if x & 1 == 0 { 4 } else { 16 };
            cases.push(
                (0..len)
                    .map(|i| (x >> (i % 24)) as u8 ^ (i as u8).wrapping_mul(37))
                    .collect(),
            );
        }
        for b in cases {
            let mut ours = Vec::new();
            bytes_repr(&mut ours, &b);
            assert_eq!(
                String::from_utf8(ours).unwrap_or_default(),
                by_rule(&b),
                "{b:?}"
            );
        }
    }

    /// The whole-microsecond shortcut writes what Ryu does, across the range it takes and
    /// either side of its bounds.
    #[test]
    fn whole_microseconds_as_ryu_writes_them() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut hits = 0;
        for i in 0..200_000u64 {
            let micros = match i % 4 {
                0 => next() % 8_589_934_592_000_000, // anywhere below 2^33 s
                1 => 1_700_000_000_000_000 + next() % 100_000_000_000_000, // today's times
                2 => next() % 1_000_000,             // below one second
                _ => {
                    (next() % 9_000_000) * 1_000_000
                        + [0, 1, 10, 100_000, 999_999]
                            .get(i as usize % 5)
                            .copied()
                            .unwrap_or(0)
                }
            };
            for x in [
                micros as f64 / 1e6,
                f64::from_bits((micros as f64 / 1e6).to_bits() + 1),
            ] {
                let Some((int, frac)) = whole_micros(x) else {
                    continue;
                };
                hits += 1;
                let mut ours = Vec::new();
                push_micros(&mut ours, int, frac);
                let mut buf = ryu::Buffer::new();
                let theirs = ryu_as_python(&mut buf, x).unwrap_or("?");
                assert_eq!(std::str::from_utf8(&ours), Ok(theirs), "{x:e}");
            }
        }
        assert!(hits > 150_000, "{hits}");
        for x in [0.0, 5e-5, 8_589_934_592.5, f64::NAN, -1.5, 1.0000005] {
            assert_eq!(whole_micros(x), None, "{x}");
        }
        assert_eq!(whole_micros(2.5), Some((2, 500_000)));
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
            (1.5e-5, "1.5e-05"),
            (9.99e-5, "9.99e-05"),
            (0.00012, "0.00012"),
            (1234567890123456.0, "1234567890123456.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1700000000.123456, "1700000000.123456"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "inf"),
        ] {
            let mut s = String::new();
            float_repr(&mut s, x);
            assert_eq!(s, text);
        }
    }
}
