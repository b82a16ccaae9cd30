//! `histogram [--mode map|read|wasi] [--window SIZE_BYTES] NAME`: 256 lines `{byte} {count}`,
//! for every byte value 0..=255 in order (zero counts included).

use famfs_example_common::{parse_args, scan_or_exit};

/// Four tables, so that runs of equal bytes do not serialise on one counter.
struct Histogram {
    tables: Box<[[u64; 256]; 4]>,
}

impl Histogram {
    fn feed(&mut self, chunk: &[u8]) {
        let [t0, t1, t2, t3] = &mut *self.tables;
        let mut quads = chunk.chunks_exact(4);
        for q in &mut quads {
            t0[q[0] as usize] += 1;
            t1[q[1] as usize] += 1;
            t2[q[2] as usize] += 1;
            t3[q[3] as usize] += 1;
        }
        for &b in quads.remainder() {
            t0[b as usize] += 1;
        }
    }
}

fn main() {
    let opts = parse_args("histogram", "NAME", 1);
    let name = &opts.args[0];
    let mut h = Histogram { tables: Box::new([[0; 256]; 4]) };
    scan_or_exit(&opts, name, |c| h.feed(c));
    let mut out = String::with_capacity(256 * 12);
    for b in 0..256 {
        let n: u64 = h.tables.iter().map(|t| t[b]).sum();
        out.push_str(&format!("{b} {n}\n"));
    }
    print!("{out}");
}
