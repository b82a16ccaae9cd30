//! `sql [OPTIONS] QUERY`: runs one SQL statement over the datasets famfs-run grants this guest
//! and prints the result (see `famfs_sql::args::USAGE`). Every granted Arrow, Parquet or CSV
//! dataset is a table named after its file; `--table NAME=PATH` names one. Exit codes: 0, 1 for
//! an error (DataFusion's message on standard error), 2 for bad arguments.

use famfs_sql::args::{USAGE, parse, read_sql};
use famfs_sql::famfs::{Request, execute};
use std::io::Write;

// Built without LTO: keep the export the host returns lists through.
famfs_guest::export_cabi_realloc!();

fn main() {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("sql: {message}");
            }
            eprintln!("usage: sql {USAGE}");
            std::process::exit(2);
        }
    };
    let sql = read_sql(&args.sql).unwrap_or_else(|e| fail(&format!("cannot read the query from standard input: {e}")));
    let request = Request {
        sql,
        format: args.format,
        tables: args.tables,
        memory_pool: args.memory_pool,
        batch_size: args.batch_size,
        window: args.window,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    match execute(&request, &mut out) {
        Ok(summary) if args.timing => eprintln!("sql: {}", summary.timing_line()),
        Ok(_) => {}
        Err(message) => {
            let _ = out.flush();
            fail(&message);
        }
    }
    let copied = famfs_guest::arrow::realigned_total();
    if copied.buffers > 0 {
        eprintln!(
            "sql: note: {} buffers ({} bytes) of Arrow files were copied to align their 16-byte values; \
             the rest was read in place",
            copied.buffers, copied.bytes
        );
    }
}

fn fail(message: &str) -> ! {
    eprintln!("sql: {message}");
    std::process::exit(1)
}
