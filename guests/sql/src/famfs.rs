//! Tables from the datasets famfs-run grants the guest.
//!
//! Every granted dataset whose format [`FileFormat::detect`] knows is a table named after its
//! file ([`table_name`]), and `--table NAME=PATH` names one explicitly. Arrow files are
//! [`ArrowSource`]s: each scan opens the file with the SDK, decodes only the projected columns,
//! and streams the batches window by window (a batch is the mapped pages; a window is unmapped
//! once its batches are dropped). Parquet and CSV files are mapped whole and read in place.

mod bridge;

use crate::files::{FileFormat, InPlaceFiles, table_name};
use crate::table::{BatchSource, Batches, SourceTable};
use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use famfs_guest::Dataset;
use famfs_guest::arrow::{ArrowError, ArrowFile, map_whole};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A table the guest registered: its name, dataset and format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// The table's name.
    pub name: String,
    /// The dataset it reads.
    pub path: String,
    /// The dataset's format.
    pub format: FileFormat,
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Which tables a statement needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// Every table (`SHOW TABLES`, `information_schema`).
    All,
    /// Only these (the names the statement refers to).
    Names(BTreeSet<String>),
}

impl Wanted {
    /// The tables `sql` refers to, as DataFusion resolves them (a statement that does not parse
    /// is DataFusion's error here).
    pub fn of(ctx: &SessionContext, sql: &str) -> Result<Wanted> {
        let state = ctx.state();
        let statement = state.sql_to_statement(sql, &state.config().options().sql_parser.dialect)?;
        let references = state.resolve_table_references(&statement)?;
        if references.iter().any(|r| r.schema() == Some("information_schema")) {
            return Ok(Wanted::All);
        }
        Ok(Wanted::Names(references.iter().map(|r| r.table().to_string()).collect()))
    }

    fn contains(&self, name: &str) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Names(names) => names.contains(name),
        }
    }
}

/// Registers the tables `wanted` names: `explicit` ones (`--table NAME=PATH`), and every other
/// granted dataset in a known format under its file's name. Only those are opened and mapped,
/// so the other files of a directory cost nothing and a bad one breaks only the queries that
/// name it. Two datasets that would be the same table are an error that says to name one
/// explicitly. An explicit table that cannot be read is an error; any other is skipped with a
/// warning on standard error (a query naming it then finds no such table). Arrow files are read
/// in windows of `window` bytes (`None`: the SDK's default windows).
pub async fn register_tables(
    ctx: &SessionContext,
    explicit: &[(String, String)],
    window: Option<u64>,
    wanted: &Wanted,
) -> Result<Vec<TableInfo>> {
    let mut tables: BTreeMap<String, TableInfo> = BTreeMap::new();
    for (name, path) in explicit {
        if tables.contains_key(name) {
            return Err(DataFusionError::Plan(format!("table {name} is named twice")));
        }
        if !wanted.contains(name) {
            continue;
        }
        let dataset = Dataset::open(path).map_err(|e| DataFusionError::Plan(format!("table {name} ({path}): {e}")))?;
        let format = detect(&dataset).ok_or_else(|| {
            DataFusionError::Plan(format!("table {name} ({path}): not an Arrow, Parquet or CSV file"))
        })?;
        tables.insert(name.clone(), TableInfo { name: name.clone(), path: path.clone(), format });
    }
    let mut clashes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for info in Dataset::list() {
        let name = table_name(&info.name);
        if explicit.iter().any(|(n, p)| *n == name || *p == info.name) || !wanted.contains(&name) {
            continue;
        }
        // Only files that are tables can clash: `readings.csv` and `readings.txt` do not.
        let Some(format) = Dataset::open(&info.name).ok().and_then(|d| detect(&d)) else { continue };
        if tables.contains_key(&name) {
            clashes.entry(name).or_default().push(info.name);
            continue;
        }
        tables.insert(name.clone(), TableInfo { name, path: info.name, format });
    }
    if let Some((name, paths)) = clashes.into_iter().next() {
        let first = &tables[&name].path;
        return Err(DataFusionError::Plan(format!(
            "the datasets {first} and {} would both be table `{name}`: name one explicitly \
             (--table NAME=PATH, or \"tables\" in a handler request)",
            paths.join(", ")
        )));
    }
    let mut files = InPlaceFiles::new(ctx);
    let mut registered = Vec::with_capacity(tables.len());
    for t in tables.into_values() {
        match register(ctx, &mut files, &t, window).await {
            Ok(()) => registered.push(t),
            Err(e) if !explicit.iter().any(|(n, _)| *n == t.name) => {
                eprintln!("sql: skipping {}: {}", t.path, crate::query::one_line(&e));
            }
            Err(e) => return Err(e.context(format!("table {} ({})", t.name, t.path))),
        }
    }
    Ok(registered)
}

/// The format of a dataset, from its name and first bytes.
fn detect(dataset: &Dataset) -> Option<FileFormat> {
    let head = dataset.read(0, dataset.len().min(8) as usize).ok()?;
    FileFormat::detect(dataset.name(), &head)
}

async fn register(ctx: &SessionContext, files: &mut InPlaceFiles, t: &TableInfo, window: Option<u64>) -> Result<()> {
    match t.format {
        FileFormat::Arrow => {
            let source = ArrowSource::open(&t.name, &t.path, window)?;
            ctx.register_table(t.name.as_str(), Arc::new(SourceTable::new(Arc::new(source))))?;
            Ok(())
        }
        FileFormat::Parquet | FileFormat::Csv => {
            let dataset = Arc::new(Dataset::open(&t.path).map_err(external)?);
            let why = format!("{} files are mapped whole", t.format.name());
            let mapped = map_whole(&dataset).map_err(|e| {
                let instead = "convert it to Arrow IPC, which is read in windows";
                DataFusionError::Plan(no_room(&e, dataset.len(), &why, instead).unwrap_or_else(|| e.to_string()))
            })?;
            files.register(ctx, &t.name, t.format, Bytes::from_owner(mapped)).await
        }
    }
}

/// An Arrow IPC file read with the SDK, zero-copy; or, when its buffers are compressed (LZ4 or
/// ZSTD, which cannot be read in place), mapped whole and decoded batch by batch into guest
/// memory by DataFusion's arrow-rs ([`crate::ipc::IpcSource`]). Every error names the table
/// and the file.
#[derive(Debug)]
pub struct ArrowSource {
    table: String,
    path: String,
    schema: SchemaRef,
    window: Option<u64>,
    /// The file mapped whole for decoding, when its dictionaries are compressed (the SDK
    /// refuses such a file as it opens it, so it is known at registration).
    decoded: Option<crate::ipc::IpcSource>,
}

impl ArrowSource {
    /// Reads the footer of `path` (to learn its schema), as table `table`; scans read it in
    /// windows of `window` bytes, or the SDK's default windows. A file whose dictionaries are
    /// compressed is mapped whole now, to be decoded by its scans. (Its errors are named by
    /// [`register_tables`], which says whether the table is skipped.)
    pub fn open(table: &str, path: &str, window: Option<u64>) -> Result<ArrowSource> {
        let (schema, decoded) = match ArrowFile::open(path) {
            Ok(file) => (bridge::schema(file.schema())?, None),
            // The SDK validated the footer before it met a compressed dictionary batch.
            Err(ArrowError::Compressed { .. }) => {
                let source = map_for_decoding(path)?;
                (source.schema(), Some(source))
            }
            Err(e) => return Err(external(e)),
        };
        Ok(ArrowSource { table: table.to_string(), path: path.to_string(), schema, window, decoded })
    }

    /// What every error of this table says first: which table and file it concerns.
    fn context(&self) -> String {
        format!("table {} ({})", self.table, self.path)
    }

    /// The error for a file whose schema is not the one the table was registered with.
    fn changed(&self) -> DataFusionError {
        DataFusionError::Execution(format!(
            "{} changed while the query was planned (its schema is not the same): run it again",
            self.path
        ))
    }

    fn scan_in_place(&self, projection: Option<&[usize]>) -> Result<Batches> {
        if let Some(decoded) = &self.decoded {
            return decoded.scan(projection);
        }
        let mut file = ArrowFile::open(&self.path).map_err(external)?;
        // The bridge imports each column as the table's type: a file rewritten since the table
        // was registered must not be read as the old one.
        if bridge::schema(file.schema())? != self.schema {
            return Err(self.changed());
        }
        let schema = match projection {
            Some(p) => {
                file = file.project(p).map_err(external)?;
                Arc::new(self.schema.project(p)?)
            }
            None => Arc::clone(&self.schema),
        };
        let mut batches = match self.window {
            Some(w) => file.into_batches_in(w),
            None => file.into_batches(),
        };
        // A compressed file is refused at its first batch: decode it instead. (One compressed
        // after uncompressed ones stays an error: the batches before it were already used.)
        let first = batches.next();
        if let Some(Err(ArrowError::Compressed { .. })) = first {
            let source = map_for_decoding(&self.path)?;
            if source.schema() != self.schema {
                return Err(self.changed());
            }
            return source.scan(projection);
        }
        Ok(Box::new(first.into_iter().chain(batches).map(move |b| bridge::batch(&b.map_err(external)?, &schema))))
    }
}

/// The Arrow IPC file `path`, whose buffers are compressed, mapped whole to be decoded batch
/// by batch into guest memory.
fn map_for_decoding(path: &str) -> Result<crate::ipc::IpcSource> {
    let dataset = Arc::new(Dataset::open(path).map_err(external)?);
    let mapped = map_whole(&dataset).map_err(|e| {
        let why = "its buffers are compressed, so it is mapped whole to be decoded";
        let instead = "write it uncompressed (read in place, in windows)";
        no_room(&e, dataset.len(), why, instead).map_or_else(|| external(e), DataFusionError::Execution)
    })?;
    crate::ipc::IpcSource::new(Bytes::from_owner(mapped))
}

/// What to say when mapping a whole `len`-byte file (`why` it is mapped whole) failed for lack
/// of room: in the guest's address space (do `instead`), or under its memory limit (raise it).
/// `None` for any other error.
fn no_room(e: &ArrowError, len: u64, why: &str, instead: &str) -> Option<String> {
    match e {
        ArrowError::Dataset(famfs_guest::Error::NoAddressSpace) => {
            Some(format!("the {len}-byte file does not fit in a guest's address space ({why}): {instead}"))
        }
        ArrowError::Dataset(famfs_guest::Error::MemoryGrow { .. }) => {
            Some(format!("mapping the {len}-byte file would pass the guest's memory limit ({why}): raise --max-memory"))
        }
        _ => None,
    }
}

impl BatchSource for ArrowSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn scan(&self, projection: Option<&[usize]>) -> Result<Batches> {
        let batches = self.scan_in_place(projection).map_err(|e| e.context(self.context()))?;
        let context = self.context();
        Ok(Box::new(batches.map(move |b| b.map_err(|e| e.context(context.clone())))))
    }
}

/// The guest's memory limit, from famfs-run (`FAMFS_RUN_MAX_MEMORY`).
pub fn memory_limit() -> Option<u64> {
    std::env::var("FAMFS_RUN_MAX_MEMORY").ok()?.parse().ok()
}

/// A request to the guest: from the command line (`sql`) or a handler's input (`sql-handler`).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The statement.
    pub sql: String,
    /// How to write the result.
    pub format: crate::output::Format,
    /// `--table NAME=PATH`.
    pub tables: Vec<(String, String)>,
    /// The pool in bytes; `None`: a quarter of the memory limit (or [`crate::session::DEFAULT_POOL`]).
    pub memory_pool: Option<u64>,
    /// Rows per batch; `None`: DataFusion's 8192.
    pub batch_size: Option<usize>,
    /// Arrow files' window in bytes; `None`: the SDK's default windows.
    pub window: Option<u64>,
}

/// Registers the tables and runs the request, writing the result to `out`: what it took, or the
/// error as one line (DataFusion's message, with what it was doing first).
pub fn execute(request: &Request, out: &mut dyn std::io::Write) -> std::result::Result<crate::query::Summary, String> {
    let mut options = crate::session::SessionOptions::default();
    let limit = memory_limit();
    options.memory_pool = match (request.memory_pool, limit) {
        // A pool as big as the memory limit could only end in a trap, not a clear error.
        (Some(bytes), Some(limit)) if bytes >= limit => {
            return Err(format!(
                "a memory pool of {bytes} bytes does not fit in the guest's memory limit of {limit} bytes: \
                 ask for less (default: a quarter of the limit)"
            ));
        }
        (Some(bytes), _) => usize::try_from(bytes).unwrap_or(usize::MAX),
        (None, Some(limit)) => crate::session::SessionOptions::pool_for_memory_limit(limit),
        (None, None) => crate::session::DEFAULT_POOL,
    };
    match request.batch_size {
        Some(rows) if rows > crate::session::MAX_BATCH_ROWS => {
            return Err(format!(
                "a batch size of {rows} rows is more than {} (operators allocate whole batches up front)",
                crate::session::MAX_BATCH_ROWS
            ));
        }
        Some(rows) => options.batch_size = rows,
        None => {}
    }
    let runtime = crate::query::runtime().map_err(|e| format!("cannot start the executor: {e}"))?;
    runtime
        .block_on(async {
            let started = std::time::Instant::now();
            let ctx = crate::session::new_session(options)?;
            let wanted = Wanted::of(&ctx, &request.sql)?;
            register_tables(&ctx, &request.tables, request.window, &wanted).await?;
            let tables = started.elapsed();
            let rows = crate::query::run(&ctx, &request.sql, request.format, out).await?;
            Ok(crate::query::Summary { rows, tables, query: started.elapsed() - tables })
        })
        .map_err(|e| crate::query::one_line(&e))
}
