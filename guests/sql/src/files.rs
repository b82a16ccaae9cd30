//! Files as tables: which format a file is, what its table is called, and Parquet and CSV
//! files registered from bytes already in memory (a mapping), read in place.

use bytes::Bytes;
use datafusion::error::{DataFusionError, Result};
use datafusion::object_store::memory::InMemory;
use datafusion::object_store::path::Path;
use datafusion::object_store::{ObjectStoreExt, PutPayload};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use std::sync::Arc;
use url::Url;

/// The formats a table can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// An Arrow IPC file (Feather v2), uncompressed: streamed batch by batch, zero-copy.
    Arrow,
    /// A Parquet file, with any of the codecs this build has (see the README).
    Parquet,
    /// CSV with a header row; column types are inferred from the first 1000 rows.
    Csv,
}

impl FileFormat {
    /// The format of the file `name` whose first bytes are `head`: by its extension
    /// (`.arrow`, `.feather`, `.ipc`, `.parquet`, `.pq`, `.csv`), else by its magic bytes (Arrow
    /// and Parquet files have them; CSV files do not). `None`: none of these (an Arrow IPC
    /// *stream*, `.arrows`, as `--format arrow` writes, is not a file and is not read).
    pub fn detect(name: &str, head: &[u8]) -> Option<FileFormat> {
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("arrow" | "feather" | "ipc") => Some(FileFormat::Arrow),
            Some("arrows") => None,
            Some("parquet" | "pq") => Some(FileFormat::Parquet),
            Some("csv") => Some(FileFormat::Csv),
            _ if head.starts_with(b"ARROW1") => Some(FileFormat::Arrow),
            _ if head.starts_with(b"PAR1") => Some(FileFormat::Parquet),
            _ => None,
        }
    }

    /// Lower-case name, as `--format`-like text and in messages.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Arrow => "arrow",
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
        }
    }
}

/// The table name of the file at `path`: its file name without the extension, with every
/// character that is not a letter, digit or `_` replaced by `_` (so that it needs no quotes in
/// SQL; DataFusion folds unquoted names to lower case, so upper-case letters are folded too).
pub fn table_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = match file.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => file,
    };
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// Parquet and CSV tables whose bytes are already in memory, read through an in-memory object
/// store that holds those `Bytes` (the mapping itself: a `Bytes` made with
/// `Bytes::from_owner` is stored, not copied) under `memory:///`.
#[derive(Debug)]
pub struct InPlaceFiles {
    store: Arc<InMemory>,
    count: usize,
}

/// The object store's URL.
const STORE_URL: &str = "memory:///";

impl InPlaceFiles {
    /// Registers the store with `ctx`.
    pub fn new(ctx: &SessionContext) -> InPlaceFiles {
        let store = Arc::new(InMemory::new());
        let url = Url::parse(STORE_URL).expect("a valid URL");
        ctx.register_object_store(&url, Arc::clone(&store) as _);
        InPlaceFiles { store, count: 0 }
    }

    /// Registers `bytes`, a `format` file, as the table `name`. Arrow files are not read this
    /// way (see [`crate::table`]).
    pub async fn register(&mut self, ctx: &SessionContext, name: &str, format: FileFormat, bytes: Bytes) -> Result<()> {
        if format == FileFormat::Parquet {
            check_parquet_footer(&bytes)?;
        }
        self.count += 1;
        let ext = format.name();
        let key = format!("t{}.{ext}", self.count);
        self.store
            .put(&Path::from(key.as_str()), PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let url = format!("{STORE_URL}{key}");
        match format {
            FileFormat::Parquet => ctx.register_parquet(name, &url, ParquetReadOptions::default()).await,
            FileFormat::Csv => ctx.register_csv(name, &url, CsvReadOptions::new().has_header(true)).await,
            FileFormat::Arrow => Err(DataFusionError::Internal("Arrow files are tables of their own".into())),
        }
    }
}

/// Checks the frame of a Parquet file before DataFusion reads it: `PAR1` at both ends and a
/// metadata length that fits in the file. parquet-rs subtracts that length from the file's in
/// `usize`, which on wasm32 wraps for a length bigger than the file (a 4-byte number anyone can
/// plant) and then slices out of range: a panic, so a trap that took every query of the guest
/// down, not an error about one file.
pub fn check_parquet_footer(bytes: &[u8]) -> Result<()> {
    let bad = |why: String| DataFusionError::Plan(format!("not a Parquet file: {why}"));
    let len = bytes.len();
    if len < 12 || !bytes.starts_with(b"PAR1") {
        return Err(bad("it does not start with PAR1".into()));
    }
    match &bytes[len - 4..] {
        b"PAR1" => {}
        b"PARE" => return Err(bad("it is encrypted (PARE), which this build does not read".into())),
        _ => return Err(bad("it does not end with PAR1 (a truncated file?)".into())),
    }
    let metadata = u32::from_le_bytes(bytes[len - 8..len - 4].try_into().expect("4 bytes"));
    if u64::from(metadata) + 12 > len as u64 {
        return Err(bad(format!(
            "its footer (at byte {}) gives {metadata} bytes of metadata, more than the {len}-byte file holds",
            len - 8
        )));
    }
    Ok(())
}
