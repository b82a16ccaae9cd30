//! libFuzzer entry point of the `host_api` target: the logic is in `host_ops.rs` (shared with
//! the normal test suite, which replays `corpus/host_api/`).
#![no_main]

#[path = "host_ops.rs"]
mod host_ops;

libfuzzer_sys::fuzz_target!(|data: &[u8]| host_ops::run(data));
