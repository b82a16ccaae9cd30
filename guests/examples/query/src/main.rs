//! `query`: a handler (the `famfs:dataset` handler world) that answers one question per request
//! about one dataset, reading it zero-copy window by window.
//!
//! Request: UTF-8 text, one `key=value` per line:
//! - `dataset=NAME` (required): the dataset to read;
//! - `contains=TEXT` (optional): also count the lines that contain TEXT.
//!
//! Reply: one JSON object, `{"dataset":NAME,"bytes":B,"lines":L,"matching_lines":M}`
//! (`matching_lines` only with `contains`). Lines are split on `\n`; a last line without `\n`
//! counts if it is not empty. An error (bad request, missing or not granted dataset) is the
//! handler's error message.
//!
//! Run: `famfs-run -d IMAGE --dataset / --invoke handle --input request.txt query.wasm`.

use famfs_guest::Dataset;
use memchr::memmem::Finder;

struct Query;

/// Counts lines, and lines containing a pattern, over chunks that may split lines.
struct LineCounter<'p> {
    finder: Option<Finder<'p>>,
    lines: u64,
    matching: u64,
    /// The unfinished last line so far (copied: it crosses a window boundary).
    partial: Vec<u8>,
}

impl LineCounter<'_> {
    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        if self.finder.as_ref().is_some_and(|f| f.find(line).is_some()) {
            self.matching += 1;
        }
    }

    fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(nl) = memchr::memchr(b'\n', chunk) {
            if self.partial.is_empty() {
                self.line(&chunk[..nl]);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&chunk[..nl]);
                self.line(&line);
            }
            chunk = &chunk[nl + 1..];
        }
        self.partial.extend_from_slice(chunk);
    }

    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl famfs_guest_handler::Guest for Query {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let request = String::from_utf8(input).map_err(|_| "the request is not UTF-8 text".to_string())?;
        let (mut dataset, mut contains) = (None, None);
        for line in request.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once('=') {
                Some(("dataset", v)) => dataset = Some(v.to_string()),
                Some(("contains", v)) if !v.is_empty() => contains = Some(v.to_string()),
                _ => return Err(format!("unknown request line `{line}`: use dataset=NAME and contains=TEXT")),
            }
        }
        let name = dataset.ok_or("the request needs a `dataset=NAME` line")?;
        let ds = Dataset::open(&name).map_err(|e| format!("{name}: {e}"))?;
        let mut counter = LineCounter {
            finder: contains.as_deref().map(|c| Finder::new(c.as_bytes())),
            lines: 0,
            matching: 0,
            partial: Vec::new(),
        };
        for window in ds.windows_default() {
            let window = window.map_err(|e| format!("{name}: {e}"))?;
            counter.feed(window.as_slice());
        }
        counter.finish();
        let mut reply =
            format!("{{\"dataset\":{},\"bytes\":{},\"lines\":{}", json_string(&name), ds.len(), counter.lines);
        if contains.is_some() {
            reply.push_str(&format!(",\"matching_lines\":{}", counter.matching));
        }
        reply.push('}');
        Ok(reply.into_bytes())
    }
}

famfs_guest_handler::export!(Query);

fn main() {
    eprintln!("query is a handler: famfs-run -d IMAGE --dataset / --invoke handle --input REQUEST query.wasm");
    std::process::exit(2);
}
