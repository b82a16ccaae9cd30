//! Decode errors: every one names the absolute byte offset on the device and the on-media field.

use thiserror::Error;

/// Why a superblock, log header or log entry could not be decoded.
///
/// `offset` is always the absolute byte offset on the device of the offending field, and
/// `field` the name famfs' C headers give it (`ts_magic`, `famfs_log_crc`, `fm_relpath`, ...),
/// so a message can be checked against a hex dump.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    /// The bytes end before the field does.
    #[error(
        "{field} at byte {offset:#x}: needs {need} bytes but the input ends after {have}; the image or device is truncated"
    )]
    Truncated {
        /// Absolute offset of the field.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// Bytes the field needs.
        need: u64,
        /// Bytes available from `offset` on.
        have: u64,
    },
    /// A magic number does not match.
    #[error("{field} at byte {offset:#x}: found {found:#x}, expected {expected:#x}: not a famfs {what}")]
    BadMagic {
        /// Absolute offset of the field.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// What was expected here ("superblock", "log header").
        what: &'static str,
        /// Value on the media.
        found: u64,
        /// Expected magic.
        expected: u64,
    },
    /// A superblock version this implementation does not read.
    #[error(
        "ts_version at byte {offset:#x}: famfs version {version} with OMF {omf_major}.{omf_minor} is not supported; this build reads version 47 (OMF 2.x) and version 48"
    )]
    UnsupportedVersion {
        /// Absolute offset of `ts_version`.
        offset: u64,
        /// `ts_version` found.
        version: u64,
        /// `ts_omf_ver_major` found.
        omf_major: u32,
        /// `ts_omf_ver_minor` found.
        omf_minor: u32,
    },
    /// A stored CRC does not match the bytes it covers.
    #[error(
        "{field} at byte {offset:#x}: stored CRC {stored:#x} but the covered bytes give {computed:#010x}; the {what} is corrupt"
    )]
    CrcMismatch {
        /// Absolute offset of the CRC field.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// What the CRC protects.
        what: &'static str,
        /// Stored value (a u64 on media).
        stored: u64,
        /// CRC-32 computed over the covered bytes.
        computed: u32,
    },
    /// A field holds a value the format does not allow.
    #[error("{field} at byte {offset:#x}: value {value} ({value:#x}) is invalid: {reason}")]
    InvalidField {
        /// Absolute offset of the field.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A path field has no NUL terminator.
    #[error("{field} at byte {offset:#x}: path has no NUL terminator within its {len} bytes")]
    PathNotTerminated {
        /// Absolute offset of the field.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// Size of the field.
        len: usize,
    },
    /// A path field is not UTF-8.
    #[error("{field} at byte {offset:#x}: path is not valid UTF-8")]
    PathNotUtf8 {
        /// Absolute offset of the field.
        offset: u64,
        /// Field name.
        field: &'static str,
    },
}

impl FormatError {
    /// Absolute device offset of the offending field.
    pub fn offset(&self) -> u64 {
        match self {
            FormatError::Truncated { offset, .. }
            | FormatError::BadMagic { offset, .. }
            | FormatError::UnsupportedVersion { offset, .. }
            | FormatError::CrcMismatch { offset, .. }
            | FormatError::InvalidField { offset, .. }
            | FormatError::PathNotTerminated { offset, .. }
            | FormatError::PathNotUtf8 { offset, .. } => *offset,
        }
    }

    /// Name of the offending on-media field.
    pub fn field(&self) -> &'static str {
        match self {
            FormatError::UnsupportedVersion { .. } => "ts_version",
            FormatError::Truncated { field, .. }
            | FormatError::BadMagic { field, .. }
            | FormatError::CrcMismatch { field, .. }
            | FormatError::InvalidField { field, .. }
            | FormatError::PathNotTerminated { field, .. }
            | FormatError::PathNotUtf8 { field, .. } => field,
        }
    }
}
