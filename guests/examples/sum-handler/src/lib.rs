//! `sum-handler`: the wrapping sum of a byte string's little-endian u64 words (a last partial
//! word zero-padded), as a handler, two ways, for the copy-in benchmark:
//! - request `map:NAME`: the dataset NAME, mapped zero-copy window by window;
//! - any other request: the request bytes themselves, which the host copied into this guest's
//!   memory (how Extism-style runtimes pass data in).
//!
//! Reply: the sum in decimal.

use famfs_guest::Dataset;

struct SumHandler;

/// Wrapping sum of the little-endian u64 words of `b`, a last partial word zero-padded.
fn sum_words(b: &[u8]) -> u64 {
    let word = |w: &[u8]| {
        let mut x = [0u8; 8];
        x[..w.len()].copy_from_slice(w);
        u64::from_le_bytes(x)
    };
    // Four independent accumulators: the loop vectorizes.
    let mut acc = [0u64; 4];
    let mut quads = b.chunks_exact(32);
    for q in &mut quads {
        for (i, a) in acc.iter_mut().enumerate() {
            *a = a.wrapping_add(word(&q[i * 8..i * 8 + 8]));
        }
    }
    let rest = quads.remainder();
    acc.iter().fold(0u64, |x, &y| x.wrapping_add(y)).wrapping_add(rest.chunks(8).map(word).fold(0, u64::wrapping_add))
}

impl famfs_guest_handler::Guest for SumHandler {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let sum = match input.strip_prefix(b"map:") {
            Some(name) => {
                let name = std::str::from_utf8(name).map_err(|_| "the dataset name is not UTF-8".to_string())?;
                let ds = Dataset::open(name).map_err(|e| format!("{name}: {e}"))?;
                let mut sum = 0u64;
                for window in ds.windows_default() {
                    let window = window.map_err(|e| format!("{name}: {e}"))?;
                    sum = sum.wrapping_add(sum_words(window.as_slice()));
                }
                sum
            }
            None => sum_words(&input),
        };
        Ok(sum.to_string().into_bytes())
    }
}

famfs_guest_handler::export!(SumHandler);
