//! Arrow IPC files (Feather v2) as arrow-rs record batches, zero-copy (feature `arrow`).
//!
//! ```no_run
//! use famfs_guest::arrow::{ArrowFile, arrow_array::cast::AsArray, arrow_array::types::Float64Type};
//!
//! # fn main() -> Result<(), famfs_guest::arrow::ArrowError> {
//! let file = ArrowFile::open("data/readings.arrow")?;
//! let celsius = file.column_index("celsius")?;
//! // Decode only the columns you need; the others are never touched.
//! let file = file.project(&[celsius])?;
//! let mut total = 0.0;
//! for batch in file.batches() {
//!     let batch = batch?;
//!     total += batch.column(0).as_primitive::<Float64Type>().iter().flatten().sum::<f64>();
//! }
//! # let _ = total;
//! # Ok(())
//! # }
//! ```
//!
//! # Zero-copy
//!
//! [`ArrowFile::batches`] maps the file into the guest's memory (as [`crate::Dataset::map`]
//! does) and hands the mapped bytes to arrow-rs's `FileDecoder` as buffers it does not own, so
//! the column values, offsets and validity bitmaps of every batch are the dataset's own bytes:
//! nothing is copied, only the small metadata of each message is parsed. Decoding validates
//! each batch (offsets in bounds, UTF-8 strings, dictionary keys), which reads the validated
//! buffers once; project the file ([`ArrowFile::project`]) to decode just the columns you use.
//!
//! That needs a file arrow-rs can use in place: uncompressed (compressed buffers would have to
//! be decompressed into new memory), and aligned, every message and buffer at a multiple of 8
//! bytes as the format requires. Other files are refused with [`ArrowError::Compressed`] or
//! [`ArrowError::Misaligned`], whose messages say how to rewrite them. famfs places files at
//! 2 MiB-aligned addresses, and the SDK maps a file at a 64 KiB-aligned address, so an offset's
//! alignment in the file is its alignment in memory.
//!
//! A few types want more than the format promises: arrow-rs reads the values of 16- and 32-byte
//! types (`Decimal128`, `Decimal256`, and the views of `Utf8View` and `BinaryView`, which pyarrow
//! writes 8-byte aligned) only at multiples of 16. Such a buffer that sits 8 bytes off is
//! copied into an aligned allocation, that buffer alone, and counted ([`Batches::realigned`],
//! and [`realigned_total`] for the whole guest), so a reader can tell (and report) when a file
//! is not read entirely in place. Not counted: dictionaries (decoded when the file is opened),
//! and the small offsets buffer arrow-rs makes for an empty string column written without one.
//!
//! # Windows
//!
//! A file bigger than the window is read in windows, each mapping the run of consecutive
//! record batches that fits (from the 64 KiB page below the first batch to the end of the
//! last): [`ArrowFile::batches`] maps files up to 1 GiB whole and bigger ones in 256 MiB
//! windows (smaller if the guest's memory limit says so, bigger for a single batch that needs
//! it); [`ArrowFile::batches_in`] takes the window size, and refuses a batch that does not fit
//! ([`ArrowError::BatchTooLarge`]).
//!
//! # Why batches cannot outlive their mapping
//!
//! A mapping is valid only while its owner lives, and arrow-rs arrays are `'static` and
//! reference counted: a lifetime on the iterator could not stop a caller from cloning a
//! column out of a batch and keeping it after the window is unmapped. So each mapped window is
//! owned the other way round: its mapping, reserved address range and dataset handle belong to
//! an `Arc` that arrow-rs stores as the custom allocation of every buffer sliced from the
//! window, hence in every array and batch decoded from it. The window is unmapped when the last
//! of them is dropped, never before. Keeping batches alive keeps their windows mapped (and
//! counted in the guest's memory); dropping each batch before asking for the next lets the
//! next window reuse the same address range, so memory stays at one window.
//!
//! Dictionaries (of dictionary-encoded columns) are decoded when the file is opened, from
//! windows that stay mapped while the [`ArrowFile`] or any batch using them lives.

mod error;
mod layout;
mod region;

pub use arrow_array;
pub use arrow_buffer;
pub use arrow_data;
pub use arrow_ipc;
pub use arrow_schema;
pub use error::{ArrowError, Message};

use crate::{DEFAULT_WINDOW, Dataset, MAX_WINDOW, MapOptions, PAGE_SIZE, WHOLE_LIMIT};
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::FileDecoder;
use arrow_schema::SchemaRef;
use layout::{HEAD_LEN, MAGIC, Span, TRAILER_LEN};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// [`ArrowFile::batches`] halves its window down to this (1 MiB) when memory runs short.
const SHRINK_MIN: u64 = 1 << 20;

/// An Arrow IPC file (Feather v2) in a dataset: its schema and index, ready to be read as
/// record batches.
#[derive(Debug)]
pub struct ArrowFile {
    dataset: Arc<Dataset>,
    schema: SchemaRef,
    output: SchemaRef,
    decoder: FileDecoder,
    batches: Vec<Span>,
}

impl ArrowFile {
    /// Opens the dataset `name` as an Arrow IPC file: see [`ArrowFile::from_dataset`].
    pub fn open(name: &str) -> Result<ArrowFile, ArrowError> {
        ArrowFile::from_dataset(Dataset::open(name)?)
    }

    /// Reads the file's footer (its schema and the index of its batches) and decodes its
    /// dictionaries. Fails with [`ArrowError::NotArrowFile`] for anything but an Arrow IPC
    /// file, and with [`ArrowError::Compressed`] or [`ArrowError::Misaligned`] for a file
    /// whose dictionaries cannot be read in place.
    pub fn from_dataset(dataset: Dataset) -> Result<ArrowFile, ArrowError> {
        let len = dataset.len();
        if len < HEAD_LEN + TRAILER_LEN {
            return Err(ArrowError::not_arrow(format!("it is only {len} bytes long")));
        }
        // Two small copies: the head and the trailer.
        let head = dataset.read(0, HEAD_LEN as usize)?;
        if !head.starts_with(MAGIC) {
            return Err(ArrowError::not_arrow("it does not start with the ARROW1 magic"));
        }
        let trailer = dataset.read(len - TRAILER_LEN, TRAILER_LEN as usize)?;
        let footer_len = layout::footer_len(&trailer, len)?;
        let footer_start = len - TRAILER_LEN - footer_len;
        let footer = {
            let mapped = dataset.map_range(footer_start, footer_len)?;
            layout::parse_footer(mapped.as_slice(), footer_start)?
        };
        let schema = Arc::new(footer.schema);
        let mut decoder = FileDecoder::new(Arc::clone(&schema), footer.version).with_require_alignment(false);
        let dataset = Arc::new(dataset);
        read_dictionaries(&dataset, &mut decoder, &footer.dictionaries)?;
        Ok(ArrowFile { dataset, output: Arc::clone(&schema), schema, decoder, batches: footer.batches })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The file's schema (every column).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The schema of the batches [`ArrowFile::batches`] yields: the file's, or its projection.
    pub fn batch_schema(&self) -> &SchemaRef {
        &self.output
    }

    /// Number of record batches.
    pub fn num_batches(&self) -> usize {
        self.batches.len()
    }

    /// The index of the column `name` in the file's schema, or [`ArrowError::NoSuchColumn`].
    pub fn column_index(&self, name: &str) -> Result<usize, ArrowError> {
        self.schema.index_of(name).map_err(|_| ArrowError::NoSuchColumn {
            name: name.to_string(),
            available: self.schema.fields().iter().map(|f| f.name().clone()).collect(),
        })
    }

    /// Decodes only the columns at `columns` (indices into [`ArrowFile::schema`], in the order
    /// the batches will have them); the other columns' buffers are skipped, never read.
    pub fn project(mut self, columns: &[usize]) -> Result<ArrowFile, ArrowError> {
        self.output = Arc::new(self.schema.project(columns).map_err(|e| ArrowError::decode(Message::Footer, e))?);
        self.decoder = self.decoder.with_projection(columns.to_vec());
        Ok(self)
    }

    /// The record batches, in order, read zero-copy in the default windows: the whole file if
    /// it is at most 1 GiB, else 256 MiB windows, halved (down to 1 MiB) when the guest cannot
    /// reserve that much memory and widened for a batch that needs more. See the module docs.
    pub fn batches(&self) -> Batches<'_> {
        Batches::new(FileRef::Borrowed(self), None)
    }

    /// [`ArrowFile::batches`] for an iterator that owns the file (one that can be stored or sent
    /// elsewhere, as a query engine's scan is).
    pub fn into_batches(self) -> Batches<'static> {
        Batches::new(FileRef::Owned(Arc::new(self)), None)
    }

    /// [`ArrowFile::batches_in`] for an iterator that owns the file.
    pub fn into_batches_in(self, window_size: u64) -> Batches<'static> {
        Batches::new(FileRef::Owned(Arc::new(self)), Some(window_size))
    }

    /// The record batches, in order, read zero-copy in windows of at most `window_size` bytes
    /// (rounded up to a multiple of 64 KiB, at most 4 GiB minus 64 KiB). A batch that does not
    /// fit in one window fails with [`ArrowError::BatchTooLarge`].
    pub fn batches_in(&self, window_size: u64) -> Batches<'_> {
        Batches::new(FileRef::Borrowed(self), Some(window_size))
    }
}

/// Adds to `copied` the non-empty buffers of `data` (and of its children) that lie outside
/// `window`: those arrow-rs copied to realign them. A dictionary's values are not the batch's
/// (they were decoded when the file was opened) and are not looked at.
fn count_copied(data: &arrow_data::ArrayData, window: &std::ops::Range<usize>, copied: &mut Realigned) {
    let nulls = data.nulls().map(|n| n.buffer());
    for buffer in data.buffers().iter().chain(nulls) {
        if !buffer.is_empty() && !window.contains(&(buffer.as_ptr() as usize)) {
            copied.buffers += 1;
            copied.bytes += buffer.len() as u64;
        }
    }
    if !matches!(data.data_type(), arrow_schema::DataType::Dictionary(..)) {
        for child in data.child_data() {
            count_copied(child, window, copied);
        }
    }
}

/// Maps the whole of `dataset` zero-copy as one [`Buffer`] that owns the mapping (unmapped when
/// the buffer and every slice of it are dropped): for readers that want a file's bytes in place
/// rather than its record batches, such as a Parquet or CSV reader. An empty dataset is an
/// empty buffer. Fails with [`crate::Error::NoAddressSpace`] (inside [`ArrowError::Dataset`])
/// for a dataset bigger than a window can be.
pub fn map_whole(dataset: &Arc<Dataset>) -> Result<Buffer, ArrowError> {
    let len = dataset.len();
    if len == 0 {
        return Ok(Buffer::from_vec(Vec::<u8>::new()));
    }
    if len > MAX_WINDOW {
        return Err(ArrowError::Dataset(crate::Error::NoAddressSpace));
    }
    region::map(dataset, 0, len, MapOptions::default())
}

/// `bytes` rounded up to whole 64 KiB pages, at least one page, at most [`MAX_WINDOW`].
fn round_to_pages(bytes: u64) -> u64 {
    bytes.max(1).div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE).min(MAX_WINDOW)
}

/// The window starting with `spans[first]` for a `window`-byte budget: its file offset (the
/// 64 KiB page below the first message), its length (to the end of the last message that
/// fits) and the index past its last message. `Err(bytes)`: the first message alone needs a
/// `bytes`-byte window.
fn plan(spans: &[Span], first: usize, window: u64) -> Result<(u64, u64, usize), u64> {
    let base = spans[first].offset & !(PAGE_SIZE - 1);
    let need = spans[first].end() - base;
    if need > window {
        return Err(round_to_pages(need).max(need));
    }
    let mut end = spans[first].end();
    let mut next = first + 1;
    // Messages are normally consecutive; one that lies before the window's start (a footer
    // listing blocks out of order) starts a new window.
    while let Some(s) = spans.get(next)
        && s.offset >= base
        && s.end() - base <= window
    {
        end = end.max(s.end());
        next += 1;
    }
    Ok((base, end - base, next))
}

/// Decodes every dictionary batch into `decoder`, mapping them in windows of at most
/// [`DEFAULT_WINDOW`] bytes (wider for a single big dictionary).
fn read_dictionaries(dataset: &Arc<Dataset>, decoder: &mut FileDecoder, spans: &[Span]) -> Result<(), ArrowError> {
    let mut i = 0;
    while i < spans.len() {
        let (base, len, end) = plan(spans, i, DEFAULT_WINDOW)
            .or_else(|need| plan(spans, i, need))
            .map_err(|bytes| ArrowError::BatchTooLarge { batch: i, bytes, window: DEFAULT_WINDOW })?;
        if len > MAX_WINDOW {
            return Err(ArrowError::Dataset(crate::Error::NoAddressSpace));
        }
        let buffer = region::map(dataset, base, len, MapOptions::default())?;
        for (n, span) in spans.iter().enumerate().take(end).skip(i) {
            let message = Message::Dictionary(n);
            let bytes = buffer.slice_with_length((span.offset - base) as usize, span.len() as usize);
            layout::check_message(&bytes[..span.meta_len as usize], span, message)?;
            decoder.read_dictionary(&span.block(), &bytes).map_err(|e| ArrowError::decode(message, e))?;
        }
        i = end;
    }
    Ok(())
}

/// The window a [`Batches`] is reading.
#[derive(Debug)]
struct Window {
    /// The mapped bytes (which own the mapping).
    buffer: Buffer,
    /// File offset of the first byte.
    base: u64,
    /// Index past the window's last batch.
    end: usize,
}

/// Buffers copied to be realigned (see the module docs): how many, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Realigned {
    /// Buffers copied.
    pub buffers: u64,
    /// Bytes copied.
    pub bytes: u64,
}

static REALIGNED_BUFFERS: AtomicU64 = AtomicU64::new(0);
static REALIGNED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Every buffer this guest's [`Batches`] have copied to realign it, since it started.
pub fn realigned_total() -> Realigned {
    Realigned { buffers: REALIGNED_BUFFERS.load(Ordering::Relaxed), bytes: REALIGNED_BYTES.load(Ordering::Relaxed) }
}

/// The file a [`Batches`] reads: borrowed ([`ArrowFile::batches`]) or its own
/// ([`ArrowFile::into_batches`]).
#[derive(Debug)]
enum FileRef<'f> {
    Borrowed(&'f ArrowFile),
    Owned(Arc<ArrowFile>),
}

impl std::ops::Deref for FileRef<'_> {
    type Target = ArrowFile;

    fn deref(&self) -> &ArrowFile {
        match self {
            FileRef::Borrowed(f) => f,
            FileRef::Owned(f) => f,
        }
    }
}

/// The record batches of an [`ArrowFile`], read window by window: from [`ArrowFile::batches`],
/// [`ArrowFile::batches_in`] or [`ArrowFile::into_batches`]. Yields `Result<RecordBatch>`;
/// after an error, nothing more.
#[derive(Debug)]
pub struct Batches<'f> {
    file: FileRef<'f>,
    next: usize,
    window: u64,
    /// The default windows: shrink when memory runs short, widen for a big batch.
    adaptive: bool,
    options: MapOptions,
    current: Option<Window>,
    windows: u64,
    realigned: Realigned,
    done: bool,
}

impl<'f> Batches<'f> {
    /// Batches of `file` in windows of `window_size` bytes, or the default windows (`None`).
    fn new(file: FileRef<'f>, window_size: Option<u64>) -> Batches<'f> {
        let len = file.dataset.len();
        let (window, adaptive) = match window_size {
            Some(w) => (round_to_pages(w), false),
            None => (round_to_pages(if len <= WHOLE_LIMIT { len } else { DEFAULT_WINDOW }), true),
        };
        Batches {
            file,
            next: 0,
            window,
            adaptive,
            options: MapOptions::default(),
            current: None,
            windows: 0,
            realigned: Realigned::default(),
            done: false,
        }
    }

    /// Fault each window's pages in when it is mapped ([`MapOptions::populate`]): every
    /// column's, projected or not.
    pub fn populate(mut self, populate: bool) -> Self {
        self.options.populate = populate;
        self
    }

    /// The window size in bytes (a multiple of 64 KiB; the default windows may change it).
    pub fn window_size(&self) -> u64 {
        self.window
    }

    /// How many windows have been mapped so far.
    pub fn windows_mapped(&self) -> u64 {
        self.windows
    }

    /// The buffers copied so far to be realigned (see the module docs); none for a file whose
    /// 16-byte values are 16-byte aligned.
    pub fn realigned(&self) -> Realigned {
        self.realigned
    }

    /// Maps the window that starts with batch `self.next`.
    fn map_window(&mut self) -> Result<Window, ArrowError> {
        let spans = &self.file.batches;
        loop {
            let planned = match plan(spans, self.next, self.window) {
                Ok(p) => p,
                // A default window widens to fit one big batch, for this window only.
                Err(need) if self.adaptive && need <= MAX_WINDOW => plan(spans, self.next, need)
                    .map_err(|bytes| ArrowError::BatchTooLarge { batch: self.next, bytes, window: need })?,
                Err(bytes) => return Err(ArrowError::BatchTooLarge { batch: self.next, bytes, window: self.window }),
            };
            let (base, len, end) = planned;
            match region::map(&self.file.dataset, base, len, self.options) {
                Ok(buffer) => {
                    self.windows += 1;
                    return Ok(Window { buffer, base, end });
                }
                Err(ArrowError::Dataset(crate::Error::MemoryGrow { .. }))
                    if self.adaptive && self.window / 2 >= SHRINK_MIN && end > self.next + 1 =>
                {
                    self.window = round_to_pages(self.window / 2);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Decodes batch `self.next` from the current window.
    fn decode(&self, window: &Window) -> Result<RecordBatch, ArrowError> {
        let (n, span) = (self.next, &self.file.batches[self.next]);
        let message = Message::Batch(n);
        let bytes = window.buffer.slice_with_length((span.offset - window.base) as usize, span.len() as usize);
        layout::check_message(&bytes[..span.meta_len as usize], span, message)?;
        match self.file.decoder.read_record_batch(&span.block(), &bytes) {
            Ok(Some(batch)) => Ok(batch),
            Ok(None) => Err(ArrowError::not_arrow(format!("{message} is an empty message"))),
            Err(e) => Err(ArrowError::decode(message, e)),
        }
    }

    /// Counts the buffers of `batch` that arrow-rs copied out of `window` to realign them.
    fn count_realigned(&mut self, window: &Window, batch: &RecordBatch) {
        let range = window.buffer.as_ptr() as usize..window.buffer.as_ptr() as usize + window.buffer.len();
        let mut copied = Realigned::default();
        for column in batch.columns() {
            count_copied(&column.to_data(), &range, &mut copied);
        }
        self.realigned.buffers += copied.buffers;
        self.realigned.bytes += copied.bytes;
        REALIGNED_BUFFERS.fetch_add(copied.buffers, Ordering::Relaxed);
        REALIGNED_BYTES.fetch_add(copied.bytes, Ordering::Relaxed);
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next >= self.file.batches.len() {
            self.current = None;
            return None;
        }
        if self.current.as_ref().is_none_or(|w| self.next >= w.end) {
            // Let go of the finished window before mapping the next, so that once the caller
            // has dropped its batches the next window reuses its address range.
            self.current = None;
            match self.map_window() {
                Ok(w) => self.current = Some(w),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let window = self.current.take().expect("a window was mapped above");
        let r = self.decode(&window);
        if let Ok(batch) = &r {
            self.count_realigned(&window, batch);
        }
        self.next += 1;
        // Keep the window only while batches of it remain: after its last batch, only the
        // caller's batches hold it.
        if self.next < window.end {
            self.current = Some(window);
        }
        if r.is_err() {
            self.done = true;
            self.current = None;
        }
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.done { 0 } else { self.file.batches.len() - self.next };
        (n, Some(n))
    }
}

impl std::iter::FusedIterator for Batches<'_> {}
