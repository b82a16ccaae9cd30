//! `wc [--mode map|read|wasi] [--window SIZE_BYTES] NAME...`: for each NAME a line
//! `{lines} {words} {bytes} {NAME}`, as coreutils `wc` counts in the C locale: lines are `\n`
//! bytes, words maximal runs of bytes other than space, `\t`, `\n`, `\v`, `\f` and `\r`.

use famfs_example_common::{parse_args, scan_or_exit};

/// 1 for the bytes that separate words.
const SPACE: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b' ' as usize] = 1;
    t[b'\t' as usize] = 1;
    t[b'\n' as usize] = 1;
    t[0x0b] = 1;
    t[0x0c] = 1;
    t[b'\r' as usize] = 1;
    t
};

/// Counts that carry over chunk boundaries: a word split between two chunks counts once.
struct Wc {
    lines: u64,
    words: u64,
    /// 1 if the last byte seen was a separator (or nothing was seen yet).
    after_space: u8,
}

impl Wc {
    fn feed(&mut self, chunk: &[u8]) {
        let mut prev = self.after_space;
        // Per block, u32 counters (no overflow: a block is at most 64 KiB).
        for block in chunk.chunks(1 << 16) {
            let (mut lines, mut words) = (0u32, 0u32);
            for &b in block {
                let space = SPACE[b as usize];
                // A word starts where a separator is followed by a non-separator.
                words += u32::from(prev & (space ^ 1));
                lines += u32::from(b == b'\n');
                prev = space;
            }
            self.lines += u64::from(lines);
            self.words += u64::from(words);
        }
        self.after_space = prev;
    }
}

fn main() {
    let opts = parse_args("wc", "NAME...", 1);
    for name in &opts.args {
        let mut wc = Wc { lines: 0, words: 0, after_space: 1 };
        let bytes = scan_or_exit(&opts, name, |c| wc.feed(c));
        println!("{} {} {} {}", wc.lines, wc.words, bytes, name);
    }
}
