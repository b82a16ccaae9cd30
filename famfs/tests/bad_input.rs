//! Bad input. Each test takes a copy of a real famfs fixture (or an image made by mkfs),
//! corrupts it at the byte offset `famfs-format.md` gives for the field, and checks that:
//! - the decoder / `Famfs::open` returns a typed `FormatError` naming exactly that offset and
//!   field, with both in its message, and nothing panics;
//! - `fsck_path` reports it (exit 2 when the superblock or log header is unreadable, 1 for bad
//!   entries or extents, with a problem naming the entry);
//! - `famfsctl fsck` exits with the same code, `famfsctl ls` either lists the valid part (replay
//!   stops at the first invalid entry; the entries before it remain) or fails with one
//!   `famfsctl: error: ...` line naming the offset; no command panics;
//! - the read-only commands leave the image byte-identical;
//! - a writer refuses a log with an invalid entry and leaves the image byte-identical.
//!
//! All offsets here are written out from the spec, not taken from the library.
