//! An Extism plugin: `sum` returns the wrapping sum of its input's little-endian u64 words (a
//! last partial word zero-padded), in decimal, like famfs-run's `sum-handler`.

use extism_pdk::{FnResult, plugin_fn};

#[plugin_fn]
pub fn sum(input: Vec<u8>) -> FnResult<String> {
    let mut chunks = input.chunks_exact(8);
    let mut s = 0u64;
    for w in &mut chunks {
        s = s.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        s = s.wrapping_add(u64::from_le_bytes(w));
    }
    Ok(s.to_string())
}
