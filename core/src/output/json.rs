//! conn.log as JSON lines, byte for byte as `sniffer/output/jsonl.py`'s `format_line` writes
//! the default fields (Zeek's JSON writer's shape): field names as Zeek's (`id.orig_h`, ...),
//! times and intervals as numbers in Python's shortest round-trip form (`json.dumps` writes a
//! float's `repr`), NaN and infinities as `null`, unset fields left out, sets as arrays,
//! booleans `true`/`false`, strings escaped as `json.dumps(ensure_ascii=False)` does and then,
//! for the characters Python does not call printable, as `\uXXXX` (`_escape_unprintable`).

use crate::flows::uid::float_repr;
use crate::output::zeek::Row;

/// Append one JSON object (no newline) for `c` to `out`.
pub fn write(out: &mut String, c: &Row<'_>) {
    out.push('{');
    number(out, "ts", c.ts);
    text(out, "uid", c.uid);
    text(out, "id.orig_h", c.orig_h);
    count(out, "id.orig_p", c.orig_p.into());
    text(out, "id.resp_h", c.resp_h);
    count(out, "id.resp_p", c.resp_p.into());
    text(out, "proto", c.proto);
    if let Some(s) = c.service {
        text(out, "service", s);
    }
    if let Some(d) = c.duration {
        number(out, "duration", d);
    }
    if let Some(n) = c.orig_bytes {
        count(out, "orig_bytes", n);
    }
    if let Some(n) = c.resp_bytes {
        count(out, "resp_bytes", n);
    }
    text(out, "conn_state", c.conn_state);
    if let Some(b) = c.local_orig {
        boolean(out, "local_orig", b);
    }
    if let Some(b) = c.local_resp {
        boolean(out, "local_resp", b);
    }
    count(out, "missed_bytes", c.missed_bytes);
    if !c.history.is_empty() {
        text(out, "history", c.history);
    }
    count(out, "orig_pkts", c.orig_pkts);
    count(out, "orig_ip_bytes", c.orig_ip_bytes);
    count(out, "resp_pkts", c.resp_pkts);
    count(out, "resp_ip_bytes", c.resp_ip_bytes);
    if !c.tunnel_parents.is_empty() {
        key(out, "tunnel_parents");
        out.push('[');
        for (i, t) in c.tunnel_parents.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, t);
        }
        out.push(']');
    }
    count(out, "ip_proto", c.ip_proto.into());
    if let Some(s) = c.community_id {
        text(out, "community_id", s);
    }
    out.push('}');
}

fn key(out: &mut String, name: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
}

fn number(out: &mut String, name: &str, x: f64) {
    key(out, name);
    if x.is_finite() {
        float_repr(out, x);
    } else {
        out.push_str("null"); // Zeek's JSON writer: NaN and infinities as null
    }
}

fn count(out: &mut String, name: &str, n: u64) {
    key(out, name);
    out.push_str(itoa::Buffer::new().format(n));
}

fn boolean(out: &mut String, name: &str, b: bool) {
    key(out, name);
    out.push_str(if b { "true" } else { "false" });
}

fn text(out: &mut String, name: &str, s: &str) {
    key(out, name);
    string(out, s);
}

/// A JSON string: `json.dumps`'s escapes (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other C0
/// controls as `\u00XX`), then `\uXXXX` (a surrogate pair beyond the BMP) for every other
/// character Python's `str.isprintable` refuses that can occur here: DEL, the C1 controls,
/// and the format, separator and private-use characters.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c == ' ' || (c.is_ascii() && !c.is_ascii_control()) => out.push(c),
            c if printable(c) => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str("\\u");
                    for shift in [12u16, 8, 4, 0] {
                        let d = (*u >> shift) & 15;
                        out.push(char::from_digit(u32::from(d), 16).unwrap_or('0'));
                    }
                }
            }
        }
    }
    out.push('"');
}

/// Python's `str.isprintable` for a non-ASCII character, as far as the core's records can
/// hold one (they are ASCII today: addresses, uids, letters; this keeps the writer right if
/// one ever is not): the controls, format characters, separators other than the space,
/// surrogates and private-use characters are not printable.
fn printable(c: char) -> bool {
    let n = u32::from(c);
    !(matches!(n, 0x00..=0x1F | 0x7F..=0x9F | 0xA0 | 0xAD | 0x1680 | 0x2000..=0x200F | 0x2028..=0x202F
        | 0x205F..=0x206F | 0x3000 | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF
        | 0xF0000..=0x10FFFF))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::conn::ConnRecord;

    #[test]
    fn a_record_as_python_writes_it() {
        let rec = ConnRecord {
            ts: 1.5,
            uid: "Cx".into(),
            orig_h: "1.2.3.4".into(),
            orig_p: 1,
            resp_h: "5.6.7.8".into(),
            resp_p: 2,
            proto: "tcp".into(),
            ip_proto: 6,
            duration: Some(0.1),
            orig_bytes: Some(0),
            resp_bytes: Some(5),
            conn_state: "S0".into(),
            local_orig: Some(true),
            local_resp: Some(false),
            history: "ShA".into(),
            tunnel_parents: vec!["Ca".into(), "Cb".into()],
            community_id: Some("1:x=".into()),
            ..ConnRecord::default()
        };
        let mut out = String::new();
        write(&mut out, &rec.row());
        assert_eq!(
            out,
            r#"{"ts":1.5,"uid":"Cx","id.orig_h":"1.2.3.4","id.orig_p":1,"id.resp_h":"5.6.7.8","id.resp_p":2,"proto":"tcp","duration":0.1,"orig_bytes":0,"resp_bytes":5,"conn_state":"S0","local_orig":true,"local_resp":false,"missed_bytes":0,"history":"ShA","orig_pkts":0,"orig_ip_bytes":0,"resp_pkts":0,"resp_ip_bytes":0,"tunnel_parents":["Ca","Cb"],"ip_proto":6,"community_id":"1:x="}"#
        );
    }

    #[test]
    fn strings_escaped_as_python_escapes_them() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\n\u{1}\u{7f}\u{9b}\u{202e}é\u{1f600}");
        assert_eq!(out, r#""a\"b\\c\n\u0001\u007f\u009b\u202eé😀""#);
    }
}
