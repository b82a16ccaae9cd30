//! `arrow-agg [--format csv|json|arrow] [--window SIZE_BYTES] [--populate] [--keep] NAME KEY VALUE`: groups
//! the rows of the Arrow IPC file NAME by column KEY and prints count, sum, mean, min and max of
//! column VALUE per group (see the `arrow_agg` library for the semantics), reading the file
//! zero-copy, window by window. `arrow-agg --info NAME` decodes every column of every batch and
//! prints the schema, the batch and row counts, the windows mapped and the buffers copied to
//! realign them (16-byte values 8 bytes off, as pyarrow writes them).

use arrow_agg::{GroupBy, to_record_batch, write_csv, write_json};
use famfs_example_common::{fail, parse_size};
use famfs_guest::arrow::{ArrowFile, Batches};

const USAGE: &str =
    "usage: arrow-agg [--format csv|json|arrow] [--window SIZE_BYTES] [--populate] [--keep] NAME KEY VALUE
       arrow-agg --info [--window SIZE_BYTES] NAME
  NAME        an Arrow IPC file (Feather v2, uncompressed) granted to this guest
  KEY         the column to group by (integers or strings, or a dictionary of them)
  VALUE       the column to aggregate (integers or floating point)
  --format    csv (default), json, or arrow (an Arrow IPC stream: KEY, count, sum, mean, min, max)
  --window    map the file in windows of this many bytes (K/M/G suffixes), whole batches each;
              default: whole if at most 1 GiB, else 256 MiB
  --populate  fault each window's pages in when it is mapped
  --keep      keep every batch until all are read, then aggregate (their windows stay mapped
              meanwhile: more memory, same result)
  --info      print the schema, batches, rows, windows and realigned buffers instead";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
    Arrow,
}

struct Options {
    format: Format,
    window: Option<u64>,
    populate: bool,
    keep: bool,
    info: bool,
    args: Vec<String>,
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o =
        Options { format: Format::Csv, window: None, populate: false, keep: false, info: false, args: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "--format" => {
                o.format = match inline.or_else(|| args.next()).as_deref() {
                    Some("csv") => Format::Csv,
                    Some("json") => Format::Json,
                    Some("arrow") => Format::Arrow,
                    _ => usage(),
                }
            }
            "--window" => match inline.or_else(|| args.next()).as_deref().and_then(parse_size) {
                Some(w) if w > 0 => o.window = Some(w),
                _ => usage(),
            },
            "--populate" if inline.is_none() => o.populate = true,
            "--keep" if inline.is_none() => o.keep = true,
            "--info" if inline.is_none() => o.info = true,
            "--" => o.args.extend(args.by_ref()),
            "-h" | "--help" => usage(),
            f if f.starts_with("--") => usage(),
            _ => o.args.push(a),
        }
    }
    if o.args.len() != if o.info { 1 } else { 3 } {
        usage();
    }
    o
}

fn batches<'f>(file: &'f ArrowFile, o: &Options) -> Batches<'f> {
    match o.window {
        Some(w) => file.batches_in(w),
        None => file.batches(),
    }
    .populate(o.populate)
}

fn info(file: &ArrowFile, o: &Options) -> String {
    let mut out = String::new();
    for f in file.schema().fields() {
        out.push_str(&format!("{}: {}{}\n", f.name(), f.data_type(), if f.is_nullable() { "" } else { " not null" }));
    }
    let mut rows = 0;
    let mut it = batches(file, o);
    for batch in it.by_ref() {
        rows += batch.unwrap_or_else(|e| fail(format!("{}: {e}", o.args[0]))).num_rows();
    }
    let copied = it.realigned();
    out.push_str(&format!(
        "batches: {}\nrows: {rows}\nwindows: {}\nrealigned: {} buffers, {} bytes\n",
        file.num_batches(),
        it.windows_mapped(),
        copied.buffers,
        copied.bytes
    ));
    out
}

fn aggregate(file: ArrowFile, o: &Options) -> Vec<u8> {
    let (name, key, value) = (&o.args[0], &o.args[1], &o.args[2]);
    let col = |c: &str| file.column_index(c).unwrap_or_else(|e| fail(format!("{name}: {e}")));
    let (k, v) = (col(key), col(value));
    let schema = file.schema().clone();
    let mut agg = GroupBy::new(schema.field(k), schema.field(v)).unwrap_or_else(|e| fail(format!("{name}: {e}")));
    // Decode the two columns only (one, if they are the same).
    let (projection, vi) = if k == v { (vec![k], 0) } else { (vec![k, v], 1) };
    let file = file.project(&projection).unwrap_or_else(|e| fail(format!("{name}: {e}")));
    let mut kept = Vec::new();
    for batch in batches(&file, o) {
        let batch = batch.unwrap_or_else(|e| fail(format!("{name}: {e}")));
        if o.keep {
            kept.push(batch);
            continue;
        }
        agg.update(batch.column(0), batch.column(vi)).unwrap_or_else(|e| fail(format!("{name}: {e}")));
        // The batch drops here: once a window's batches are gone it is unmapped, and the next
        // window reuses its address range.
    }
    // With --keep, every window is still mapped: each batch holds its own.
    for batch in &kept {
        agg.update(batch.column(0), batch.column(vi)).unwrap_or_else(|e| fail(format!("{name}: {e}")));
    }
    let copied = famfs_guest::arrow::realigned_total();
    if copied.buffers > 0 {
        eprintln!(
            "arrow-agg: note: {} buffers ({} bytes) of {name} were copied to align their 16-byte values",
            copied.buffers, copied.bytes
        );
    }
    let groups = agg.finish();
    let mut out = String::with_capacity(64 * (groups.len() + 1));
    match o.format {
        Format::Csv => write_csv(&mut out, key, &groups),
        Format::Json => write_json(&mut out, &groups),
        Format::Arrow => return arrow_stream(key, &groups),
    }
    out.into_bytes()
}

/// The groups as an Arrow IPC stream.
fn arrow_stream(key: &str, groups: &[arrow_agg::Group]) -> Vec<u8> {
    let batch = to_record_batch(key, groups).unwrap_or_else(|e| fail(format!("cannot build the result: {e}")));
    let mut out = Vec::new();
    let written = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).and_then(|mut w| {
        w.write(&batch)?;
        w.finish()
    });
    written.unwrap_or_else(|e| fail(format!("cannot write the result: {e}")));
    out
}

fn main() {
    let o = parse_args();
    let name = &o.args[0];
    let file = ArrowFile::open(name).unwrap_or_else(|e| fail(format!("{name}: {e}")));
    let out = if o.info { info(&file, &o).into_bytes() } else { aggregate(file, &o) };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = std::io::Write::write_all(&mut stdout, &out).and_then(|()| std::io::Write::flush(&mut stdout)) {
        fail(format!("cannot write to standard output: {e}"));
    }
}
