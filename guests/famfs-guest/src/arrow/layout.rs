//! The layout of an Arrow IPC file, checked before arrow-rs sees any of it: the trailer, the
//! footer (schema and block index), and each message's metadata (header type, compression,
//! buffers inside the body and 8-byte aligned).
//!
//! arrow-rs slices its input with panicking slice operations wherever a block or buffer says
//! so; checking every offset here first keeps bad input an error instead of a trap.
//!
//! The file format (<https://arrow.apache.org/docs/format/Columnar.html#ipc-file-format>):
//! `ARROW1`, two padding bytes, the schema message, dictionary and record batch messages, the
//! footer (a flatbuffer listing every message's block: offset, metadata length, body length),
//! the footer's length as a little-endian `i32`, and `ARROW1` again.

use super::error::{ArrowError, Message};
use arrow_ipc::{Block, MetadataVersion};
use arrow_schema::Schema;

/// The magic bytes at both ends of an Arrow IPC file.
pub(crate) const MAGIC: &[u8; 6] = b"ARROW1";

/// Bytes at the start of the file: the magic, padded to 8.
pub(crate) const HEAD_LEN: u64 = 8;

/// Bytes at the end of the file: the footer length and the magic.
pub(crate) const TRAILER_LEN: u64 = 10;

/// Arrow's alignment of every message and buffer.
const ALIGN: u64 = 8;

/// One message of the file, checked to lie inside it (before the footer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// File offset of the message (its metadata).
    pub(crate) offset: u64,
    /// Bytes of metadata (with the continuation marker, length and padding).
    pub(crate) meta_len: u64,
    /// Bytes of body (the buffers).
    pub(crate) body_len: u64,
}

impl Span {
    /// Bytes of the whole message.
    pub(crate) fn len(&self) -> u64 {
        self.meta_len + self.body_len
    }

    /// File offset just past the message.
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.len()
    }

    /// The footer block arrow-rs's decoder wants. The values came from a block (they fit).
    pub(crate) fn block(&self) -> Block {
        Block::new(self.offset as i64, self.meta_len as i32, self.body_len as i64)
    }
}

/// The footer, decoded.
#[derive(Debug)]
pub(crate) struct Footer {
    /// The file's schema.
    pub(crate) schema: Schema,
    /// The metadata version, which every message must repeat.
    pub(crate) version: MetadataVersion,
    /// Dictionary batches, in the footer's order.
    pub(crate) dictionaries: Vec<Span>,
    /// Record batches, in the footer's order.
    pub(crate) batches: Vec<Span>,
}

/// The footer's length, from the last [`TRAILER_LEN`] bytes of a `file_len`-byte file, checked
/// to fit between the head and the trailer.
pub(crate) fn footer_len(trailer: &[u8], file_len: u64) -> Result<u64, ArrowError> {
    if trailer.len() != TRAILER_LEN as usize || &trailer[4..] != MAGIC {
        return Err(ArrowError::not_arrow(
            "it does not end with the ARROW1 magic: an Arrow IPC stream, a Parquet or CSV file, or a truncated file",
        ));
    }
    let len = i32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    match u64::try_from(len) {
        Ok(n) if n > 0 && n <= file_len - HEAD_LEN - TRAILER_LEN => Ok(n),
        _ => Err(ArrowError::not_arrow(format!(
            "its trailer gives a footer length of {len} bytes, which does not fit in the {file_len}-byte file"
        ))),
    }
}

/// Decodes the footer from its bytes; every block must end by `footer_start`.
pub(crate) fn parse_footer(bytes: &[u8], footer_start: u64) -> Result<Footer, ArrowError> {
    let footer = arrow_ipc::root_as_footer(bytes)
        .map_err(|e| ArrowError::not_arrow(format!("its footer is not a valid Arrow footer: {e}")))?;
    let ipc_schema = footer.schema().ok_or_else(|| ArrowError::not_arrow("its footer has no schema"))?;
    if !ipc_schema.endianness().equals_to_target_endianness() {
        return Err(ArrowError::not_arrow(
            "it is big-endian; zero-copy reading needs little-endian data (rewrite it on a little-endian machine)",
        ));
    }
    let schema =
        arrow_ipc::convert::try_fb_to_schema(ipc_schema).map_err(|e| ArrowError::decode(Message::Footer, e))?;
    Ok(Footer {
        schema,
        version: footer.version(),
        dictionaries: spans(footer.dictionaries().into_iter().flatten(), Message::Dictionary, footer_start)?,
        batches: spans(footer.recordBatches().into_iter().flatten(), Message::Batch, footer_start)?,
    })
}

/// Checks the footer's blocks of one kind (`kind(i)` names block `i`).
fn spans<'a>(
    blocks: impl Iterator<Item = &'a Block>,
    kind: fn(usize) -> Message,
    footer_start: u64,
) -> Result<Vec<Span>, ArrowError> {
    blocks.enumerate().map(|(i, b)| span(b, kind(i), footer_start)).collect()
}

/// Checks a footer block: inside the file before the footer, aligned, with room for the
/// metadata prefix (continuation marker and length) arrow-rs reads unchecked.
fn span(block: &Block, message: Message, footer_start: u64) -> Result<Span, ArrowError> {
    let (offset, meta_len, body_len) = (block.offset(), block.metaDataLength(), block.bodyLength());
    let outside = || {
        ArrowError::not_arrow(format!(
            "the footer places {message} at offset {offset} with {meta_len} bytes of metadata and {body_len} \
             bytes of body, outside the file's {footer_start} bytes of messages (a truncated or corrupt file)"
        ))
    };
    let (Ok(offset), Ok(meta_len), Ok(body_len)) =
        (u64::try_from(offset), u64::try_from(meta_len), u64::try_from(body_len))
    else {
        return Err(outside());
    };
    if offset < HEAD_LEN || meta_len < 8 {
        return Err(outside());
    }
    match offset.checked_add(meta_len).and_then(|e| e.checked_add(body_len)) {
        Some(end) if end <= footer_start => {}
        _ => return Err(outside()),
    }
    if !offset.is_multiple_of(ALIGN) || !meta_len.is_multiple_of(ALIGN) {
        return Err(ArrowError::Misaligned {
            message,
            detail: format!(
                "its metadata starts at byte {offset} and its body at byte {}, both must be multiples of 8",
                offset + meta_len
            ),
        });
    }
    Ok(Span { offset, meta_len, body_len })
}

/// Checks the metadata of a dictionary or record batch message (`meta`, [`Span::meta_len`]
/// bytes) against its span: the header type `message` expects, no compression, and every
/// buffer inside the body and 8-byte aligned.
pub(crate) fn check_message(meta: &[u8], span: &Span, message: Message) -> Result<(), ArrowError> {
    let corrupt = |what: String| {
        ArrowError::decode(message, arrow_schema::ArrowError::ParseError(format!("{what} (a corrupt file)")))
    };
    // An encapsulated message: 0xFFFFFFFF, the flatbuffer's length, the flatbuffer; files from
    // before Arrow 0.15 lack the marker. `span` guarantees at least 8 bytes.
    let fb = if meta[..4] == [0xff; 4] { &meta[8..] } else { &meta[4..] };
    let parsed =
        arrow_ipc::root_as_message(fb).map_err(|e| corrupt(format!("its metadata is not a valid message: {e}")))?;
    let batch = match message {
        Message::Dictionary(_) => parsed.header_as_dictionary_batch().and_then(|d| d.data()),
        _ => parsed.header_as_record_batch(),
    };
    let Some(batch) = batch else {
        return Err(corrupt(format!("the message is a {:?}, not what the footer says", parsed.header_type())));
    };
    if let Some(c) = batch.compression() {
        let codec = c.codec().variant_name().unwrap_or("an unknown codec").to_string();
        return Err(ArrowError::Compressed { message, codec });
    }
    for (i, b) in batch.buffers().iter().flatten().enumerate() {
        let (off, len) = (b.offset(), b.length());
        let inside = match (u64::try_from(off), u64::try_from(len)) {
            (Ok(o), Ok(l)) => o.checked_add(l).is_some_and(|end| end <= span.body_len),
            _ => false,
        };
        if !inside {
            return Err(corrupt(format!(
                "buffer {i} ({len} bytes at body offset {off}) lies outside the {}-byte body",
                span.body_len
            )));
        }
        if off % ALIGN as i64 != 0 {
            return Err(ArrowError::Misaligned {
                message,
                detail: format!("buffer {i} starts at body offset {off}, not a multiple of 8"),
            });
        }
    }
    Ok(())
}
