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
            KeyPart::Int(n) => s.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
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
    match ryu_as_python(&mut buf, ts) {
        Some(text) => s.extend_from_slice(text.as_bytes()),
        None => {
            let mut text = String::new();
            float_repr(&mut text, ts);
            s.extend_from_slice(text.as_bytes());
        }
    }
    s.extend_from_slice(b", ");
    s.extend_from_slice(itoa::Buffer::new().format(serial).as_bytes());
    s.push(b')');
}

/// Python's `repr(bytes)`: single quotes unless the bytes hold a `'` and no `"`; `\t \n \r`,
/// `\\`, the quote in use, and `\xNN` for the rest outside printable ASCII.
pub fn bytes_repr(s: &mut Vec<u8>, b: &[u8]) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
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
