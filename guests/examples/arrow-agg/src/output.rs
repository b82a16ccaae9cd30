//! The groups as CSV or JSON text.

use crate::{Group, Key, Num};
use std::fmt::Write;

/// Column names after the key's.
const AGGREGATES: [&str; 5] = ["count", "sum", "mean", "min", "max"];

/// CSV with a header line: `KEY,count,sum,mean,min,max`, one line per group. A null key or a
/// missing mean, min or max is an empty field; a string key that is empty or holds a comma,
/// quote or line break is quoted (`"..."`, quotes doubled). Numbers print as Rust prints them
/// (shortest round-trip form; `inf` for infinities).
pub fn write_csv(out: &mut String, key_name: &str, groups: &[Group]) {
    csv_field(out, key_name);
    for a in AGGREGATES {
        out.push(',');
        out.push_str(a);
    }
    out.push('\n');
    for g in groups {
        match &g.key {
            Key::Null => {}
            Key::Str(s) if s.is_empty() => out.push_str("\"\""),
            Key::Str(s) => csv_field(out, s),
            Key::Int(i) => push(out, i),
            Key::UInt(u) => push(out, u),
        }
        out.push(',');
        push(out, g.count);
        out.push(',');
        num(out, g.sum);
        out.push(',');
        if let Some(m) = g.mean() {
            push(out, m);
        }
        out.push(',');
        if let Some(m) = g.min {
            num(out, m);
        }
        out.push(',');
        if let Some(m) = g.max {
            num(out, m);
        }
        out.push('\n');
    }
}

/// JSON: an array with one object per group, one per line, `{"key": ..., "count": ..., "sum":
/// ..., "mean": ..., "min": ..., "max": ...}` (`key` whatever the column's name, which could be
/// `count`). A null key or a missing mean, min or max is
/// `null`; infinities, which JSON cannot write as numbers, are the strings `"inf"` and `"-inf"`.
pub fn write_json(out: &mut String, groups: &[Group]) {
    out.push('[');
    for (i, g) in groups.iter().enumerate() {
        out.push_str(if i == 0 { "\n{" } else { ",\n{" });
        out.push_str("\"key\":");
        match &g.key {
            Key::Null => out.push_str("null"),
            Key::Str(s) => json_string(out, s),
            Key::Int(i) => push(out, i),
            Key::UInt(u) => push(out, u),
        }
        let values = [Some(Num::Int(g.count.into())), Some(g.sum), g.mean().map(Num::Float), g.min, g.max];
        for (name, v) in AGGREGATES.iter().zip(values) {
            out.push(',');
            json_string(out, name);
            out.push(':');
            match v {
                None => out.push_str("null"),
                Some(Num::Float(f)) if f.is_infinite() => out.push_str(if f > 0.0 { "\"inf\"" } else { "\"-inf\"" }),
                Some(n) => num(out, n),
            }
        }
        out.push('}');
    }
    out.push_str(if groups.is_empty() { "]\n" } else { "\n]\n" });
}

fn push(out: &mut String, v: impl std::fmt::Display) {
    // Writing into a String cannot fail.
    let _ = write!(out, "{v}");
}

fn num(out: &mut String, n: Num) {
    match n {
        Num::Int(i) => push(out, i),
        Num::Float(f) => push(out, f),
    }
}

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => push(out, format_args!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
