//! Fuzz target: the famfs decoders (superblock, log header, log entry) and whole images (in
//! memory and as an image file opened with `Famfs` and fsck'd). The logic is in `dispatch.rs`,
//! which the normal test suite also runs over the corpus (`famfs/tests/fuzz_corpus.rs`).

#![no_main]

mod dispatch;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dispatch::run(data);
});
