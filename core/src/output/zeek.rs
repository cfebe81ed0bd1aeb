//! conn.log rows in Zeek's ASCII (TSV) layout, byte for byte as `sniffer/output/zeek.py`'s
//! `format_row` writes Zeek's fields and the Community ID (the default columns):
//! time/interval as `%.6f`, bool `T`/`F`, unset `-`, empty string or set `(empty)`, set
//! elements joined by `,`, a string equal to `-` or `(empty)` with its first character
//! escaped, backslash, control characters (C0, DEL, C1) and, inside sets, `,` as `\xHH`, and a
//! row that would start with `#` escaped so no reader takes it for a header.

use std::fmt::Write as _;

use crate::flows::conn::ConnRecord;

pub const SEPARATOR: char = '\t';
pub const SET_SEPARATOR: char = ',';
pub const EMPTY_FIELD: &str = "(empty)";
pub const UNSET_FIELD: &str = "-";

/// Append one data line (no newline) for `c` to `out`.
pub fn write_row(out: &mut String, c: &ConnRecord) {
    let start = out.len();
    time(out, Some(c.ts));
    tab(out);
    string(out, Some(&c.uid), None);
    tab(out);
    string(out, Some(&c.orig_h), None);
    let _ = write!(out, "\t{}\t", c.orig_p);
    string(out, Some(&c.resp_h), None);
    let _ = write!(out, "\t{}\t", c.resp_p);
    string(out, Some(&c.proto), None);
    tab(out);
    string(out, c.service.as_deref(), None);
    tab(out);
    time(out, c.duration);
    tab(out);
    count(out, c.orig_bytes);
    tab(out);
    count(out, c.resp_bytes);
    tab(out);
    string(out, Some(&c.conn_state), None);
    tab(out);
    boolean(out, c.local_orig);
    tab(out);
    boolean(out, c.local_resp);
    let _ = write!(out, "\t{}\t", c.missed_bytes);
    // Zeek leaves an empty history (and an empty tunnel_parents) unset, not empty.
    string(
        out,
        (!c.history.is_empty()).then_some(c.history.as_str()),
        None,
    );
    let _ = write!(
        out,
        "\t{}\t{}\t{}\t{}\t",
        c.orig_pkts, c.orig_ip_bytes, c.resp_pkts, c.resp_ip_bytes
    );
    if c.tunnel_parents.is_empty() {
        out.push_str(UNSET_FIELD);
    } else {
        for (i, t) in c.tunnel_parents.iter().enumerate() {
            if i > 0 {
                out.push(SET_SEPARATOR);
            }
            string(out, Some(t), Some(SET_SEPARATOR));
        }
    }
    let _ = write!(out, "\t{}\t", c.ip_proto);
    string(out, c.community_id.as_deref(), None);
    if out.get(start..).is_some_and(|row| row.starts_with('#')) {
        out.replace_range(start..start + 1, "\\x23");
    }
}

fn tab(out: &mut String) {
    out.push(SEPARATOR);
}

fn time(out: &mut String, v: Option<f64>) {
    match v {
        Some(x) => {
            let _ = write!(out, "{x:.6}");
        }
        None => out.push_str(UNSET_FIELD),
    }
}

fn count(out: &mut String, v: Option<u64>) {
    match v {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
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

/// Zeek's string rendering (`_format_string` in Python), `extra` escaped too (in sets: `,`).
fn string(out: &mut String, v: Option<&str>, extra: Option<char>) {
    let Some(s) = v else {
        out.push_str(UNSET_FIELD);
        return;
    };
    if s.is_empty() {
        out.push_str(EMPTY_FIELD);
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

    mod vectors {
        use crate::flows::conn::ConnRecord;
        include!("zeek_vectors.rs");
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
