//! The WIT `error-code`, shared by the core-module and component bindings.

/// `famfs:dataset/types.error-code`. Discriminants are the canonical-ABI values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub enum ErrorCode {
    /// No dataset of that name.
    #[error("not-found")]
    NotFound = 0,
    /// Not granted, or the name escapes the granted tree.
    #[error("not-permitted")]
    NotPermitted = 1,
    /// Bad range, alignment, target or overlap.
    #[error("invalid-argument")]
    InvalidArgument = 2,
    /// No address space for the mapping.
    #[error("no-address-space")]
    NoAddressSpace = 3,
    /// The memory behind the dataset failed.
    #[error("media-error")]
    MediaError = 4,
    /// Other I/O failure.
    #[error("io")]
    Io = 5,
}
