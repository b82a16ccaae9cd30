//! `grep [--mode map|read|wasi] [--window SIZE_BYTES] PATTERN NAME`: the line `{count} {NAME}`,
//! the number of lines (split on `\n`; a last line without `\n` counts if not empty) that
//! contain PATTERN as a byte substring. Lines may cross chunk and window boundaries.

use famfs_example_common::{parse_args, scan_or_exit, usage};
use memchr::memmem::Finder;
use memchr::{memchr, memrchr};

/// Line-matching state carried from one chunk to the next.
struct Grep<'p> {
    finder: Finder<'p>,
    /// Pattern length (at least 1).
    m: usize,
    count: u64,
    /// The current (unfinished) line already contains the pattern.
    matched: bool,
    /// The last `m - 1` bytes of the current line (a match may straddle the boundary).
    tail: Vec<u8>,
}

impl Grep<'_> {
    /// Keeps the last `m - 1` bytes of `tail ++ bytes`.
    fn push_tail(&mut self, bytes: &[u8]) {
        let keep = self.m - 1;
        let take = bytes.len().min(keep);
        let drop = (self.tail.len() + take).saturating_sub(keep);
        self.tail.drain(..drop);
        let start = self.tail.len();
        self.tail.resize(start + take, 0);
        famfs_guest::copy_with_loads(&bytes[bytes.len() - take..], &mut self.tail[start..]);
    }

    /// Counts the matching lines of `full`, whole lines each ending with `\n`.
    fn count_lines(&self, full: &[u8]) -> u64 {
        let mut n = 0;
        let mut pos = 0;
        while let Some(i) = self.finder.find(&full[pos..]) {
            n += 1;
            // The pattern has no `\n`, so the match lies inside one line: skip to its end.
            match memchr(b'\n', &full[pos + i..]) {
                Some(j) => pos += i + j + 1,
                None => break,
            }
        }
        n
    }

    fn feed(&mut self, chunk: &[u8]) {
        let first_nl = memchr(b'\n', chunk);
        // The rest of the current line.
        let head = &chunk[..first_nl.unwrap_or(chunk.len())];
        if !self.matched && !self.tail.is_empty() {
            let mut straddle = self.tail.clone();
            let k = head.len().min(self.m - 1);
            straddle.resize(self.tail.len() + k, 0);
            famfs_guest::copy_with_loads(&head[..k], &mut straddle[self.tail.len()..]);
            self.matched = self.finder.find(&straddle).is_some();
        }
        if !self.matched {
            self.matched = self.finder.find(head).is_some();
        }
        let Some(p) = first_nl else {
            self.push_tail(head);
            return;
        };
        // The current line ends at `p`.
        self.count += u64::from(self.matched);
        let rest = &chunk[p + 1..];
        let (full, partial) = match memrchr(b'\n', rest) {
            Some(q) => rest.split_at(q + 1),
            None => rest.split_at(0),
        };
        self.count += self.count_lines(full);
        self.matched = self.finder.find(partial).is_some();
        self.tail.clear();
        self.push_tail(partial);
    }

    fn finish(self) -> u64 {
        // A last line without `\n`: it matched only if it is not empty.
        self.count + u64::from(self.matched)
    }
}

fn main() {
    let opts = parse_args("grep", "PATTERN NAME", 2);
    let (pattern, name) = (opts.args[0].as_bytes(), &opts.args[1]);
    if pattern.is_empty() {
        eprintln!("grep: PATTERN must not be empty");
        usage("grep", "PATTERN NAME");
    }
    let count = if pattern.contains(&b'\n') {
        // No line contains a `\n`; still read the input, so that errors are reported.
        scan_or_exit(&opts, name, |_| {});
        0
    } else {
        let mut g = Grep { finder: Finder::new(pattern), m: pattern.len(), count: 0, matched: false, tail: Vec::new() };
        scan_or_exit(&opts, name, |c| g.feed(c));
        g.finish()
    };
    println!("{count} {name}");
}
