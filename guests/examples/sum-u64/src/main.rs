//! `sum-u64 [--mode map|read|wasi] [--window SIZE_BYTES] NAME`: the line `{sum} {NAME}`, the
//! wrapping (mod 2^64) sum of the little-endian u64 words of NAME's bytes, a trailing partial
//! word zero-padded. The benchmark kernel: 64 bytes per iteration into four i64x2 accumulators.

use famfs_example_common::{parse_args, scan_or_exit};

/// Wrapping sum of the little-endian u64 words of `b` (`b.len()` a multiple of 8).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn sum_words(b: &[u8]) -> u64 {
    use core::arch::wasm32::{i64x2_add, i64x2_extract_lane, i64x2_splat, v128, v128_load};
    let mut blocks = b.chunks_exact(64);
    let (mut a0, mut a1, mut a2, mut a3) = (i64x2_splat(0), i64x2_splat(0), i64x2_splat(0), i64x2_splat(0));
    for block in &mut blocks {
        let p = block.as_ptr().cast::<v128>();
        // SAFETY: `block` is 64 bytes, so the four 16-byte loads at p, p+1, p+2, p+3 (in
        // v128 units) are in bounds; `v128_load` does not require alignment. Wasm is
        // little-endian, so each i64x2 lane is one little-endian u64 word.
        unsafe {
            a0 = i64x2_add(a0, v128_load(p));
            a1 = i64x2_add(a1, v128_load(p.add(1)));
            a2 = i64x2_add(a2, v128_load(p.add(2)));
            a3 = i64x2_add(a3, v128_load(p.add(3)));
        }
    }
    let a = i64x2_add(i64x2_add(a0, a1), i64x2_add(a2, a3));
    let mut s = (i64x2_extract_lane::<0>(a) as u64).wrapping_add(i64x2_extract_lane::<1>(a) as u64);
    for w in blocks.remainder().chunks_exact(8) {
        s = s.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()));
    }
    s
}

/// Wrapping sum of the little-endian u64 words of `b` (`b.len()` a multiple of 8).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn sum_words(b: &[u8]) -> u64 {
    let mut acc = [0u64; 4];
    let mut blocks = b.chunks_exact(32);
    for block in &mut blocks {
        for (i, a) in acc.iter_mut().enumerate() {
            let w = u64::from_le_bytes(block[i * 8..i * 8 + 8].try_into().unwrap());
            *a = a.wrapping_add(w);
        }
    }
    let mut s = acc.iter().fold(0u64, |x, y| x.wrapping_add(*y));
    for w in blocks.remainder().chunks_exact(8) {
        s = s.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()));
    }
    s
}

/// The running sum; bytes of a word split between chunks wait in `pending`.
struct SumU64 {
    sum: u64,
    pending: [u8; 8],
    npending: usize,
}

impl SumU64 {
    fn feed(&mut self, mut chunk: &[u8]) {
        if self.npending > 0 {
            let k = (8 - self.npending).min(chunk.len());
            famfs_guest::copy_with_loads(&chunk[..k], &mut self.pending[self.npending..]);
            self.npending += k;
            chunk = &chunk[k..];
            if self.npending < 8 {
                return;
            }
            self.sum = self.sum.wrapping_add(u64::from_le_bytes(self.pending));
            self.npending = 0;
        }
        let whole = chunk.len() & !7;
        self.sum = self.sum.wrapping_add(sum_words(&chunk[..whole]));
        let rest = &chunk[whole..];
        famfs_guest::copy_with_loads(rest, &mut self.pending);
        self.npending = rest.len();
    }

    fn finish(mut self) -> u64 {
        if self.npending > 0 {
            self.pending[self.npending..].fill(0);
            self.sum = self.sum.wrapping_add(u64::from_le_bytes(self.pending));
        }
        self.sum
    }
}

fn main() {
    let opts = parse_args("sum-u64", "NAME", 1);
    let name = &opts.args[0];
    let mut s = SumU64 { sum: 0, pending: [0; 8], npending: 0 };
    scan_or_exit(&opts, name, |c| s.feed(c));
    println!("{} {}", s.finish(), name);
}
