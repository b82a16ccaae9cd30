//! Why an Arrow IPC file could not be read zero-copy.

use std::fmt;

/// How to write a file this module reads: the advice every format error ends with.
const WRITE_IT_SO: &str = "write it as an uncompressed Arrow IPC file (Feather v2): pyarrow \
     `pyarrow.feather.write_feather(table, path, compression=\"uncompressed\")`, or arrow-rs \
     `arrow_ipc::writer::FileWriter` without compression";

/// Which message of the file an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// The footer (schema and block index) at the end of the file.
    Footer,
    /// Dictionary batch number `n` (in the footer's order, from 0).
    Dictionary(usize),
    /// Record batch number `n` (from 0).
    Batch(usize),
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Footer => f.write_str("the footer"),
            Message::Dictionary(n) => write!(f, "dictionary batch {n}"),
            Message::Batch(n) => write!(f, "record batch {n}"),
        }
    }
}

/// Why reading an Arrow IPC file failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ArrowError {
    /// Opening, reading or mapping the dataset failed.
    Dataset(crate::Error),
    /// The bytes are not an Arrow IPC file (no `ARROW1` magic, a footer that does not parse,
    /// blocks outside the file): `reason` says what is wrong.
    NotArrowFile {
        /// What is wrong, e.g. "it does not end with the ARROW1 magic".
        reason: String,
    },
    /// The message's buffers are compressed: they would have to be decompressed into new
    /// memory, which is what zero-copy reading avoids.
    Compressed {
        /// The compressed message.
        message: Message,
        /// The codec, e.g. `LZ4_FRAME` or `ZSTD`.
        codec: String,
    },
    /// A message or buffer does not start at the alignment Arrow requires (8 bytes for every
    /// buffer, more for some types), so it cannot be used in place.
    Misaligned {
        /// The message.
        message: Message,
        /// What is misaligned, by how much.
        detail: String,
    },
    /// One record batch (with the 64 KiB alignment of its start) is bigger than the window.
    BatchTooLarge {
        /// Its number.
        batch: usize,
        /// Bytes its window would need.
        bytes: u64,
        /// The window size.
        window: u64,
    },
    /// The schema has no column of that name.
    NoSuchColumn {
        /// The name asked for.
        name: String,
        /// The schema's column names.
        available: Vec<String>,
    },
    /// arrow-rs refused the message (a malformed or unsupported message, data that fails
    /// validation, a schema mismatch).
    Decode {
        /// The message.
        message: Message,
        /// arrow-rs's error.
        source: arrow_schema::ArrowError,
    },
}

impl ArrowError {
    /// An [`ArrowError::NotArrowFile`].
    pub(crate) fn not_arrow(reason: impl Into<String>) -> ArrowError {
        ArrowError::NotArrowFile { reason: reason.into() }
    }

    /// Wraps an arrow-rs error about `message`, recognising its alignment check.
    pub(crate) fn decode(message: Message, source: arrow_schema::ArrowError) -> ArrowError {
        let text = source.to_string();
        if text.contains("Misaligned buffers") {
            return ArrowError::Misaligned { message, detail: text };
        }
        ArrowError::Decode { message, source }
    }
}

impl fmt::Display for ArrowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArrowError::Dataset(e) => e.fmt(f),
            ArrowError::NotArrowFile { reason } => {
                write!(f, "not an Arrow IPC file ({reason}); {WRITE_IT_SO}")
            }
            ArrowError::Compressed { message, codec } => write!(
                f,
                "{message} is compressed ({codec}): compressed Arrow files cannot be read in place; \
                 {WRITE_IT_SO}"
            ),
            ArrowError::Misaligned { message, detail } => write!(
                f,
                "{message} is misaligned ({detail}): Arrow data is read in place only when every \
                 buffer is aligned as the format requires; {WRITE_IT_SO} (64-byte alignment, the \
                 arrow-rs default, suits every type)"
            ),
            ArrowError::BatchTooLarge { batch, bytes, window } => write!(
                f,
                "record batch {batch} needs a {bytes}-byte window, more than the {window}-byte window: \
                 use a bigger window, or write smaller record batches (pyarrow: write_feather(..., \
                 chunksize=ROWS); arrow-rs: write more, smaller batches)"
            ),
            ArrowError::NoSuchColumn { name, available } => {
                write!(f, "the file has no column '{name}'; its columns are: {}", available.join(", "))
            }
            ArrowError::Decode { message, source } => write!(f, "{message} cannot be decoded: {source}"),
        }
    }
}

impl std::error::Error for ArrowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArrowError::Dataset(e) => Some(e),
            ArrowError::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<crate::Error> for ArrowError {
    fn from(e: crate::Error) -> ArrowError {
        ArrowError::Dataset(e)
    }
}
