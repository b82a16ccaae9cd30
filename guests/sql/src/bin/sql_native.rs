//! `sql-native [OPTIONS] QUERY`: the SQL guest's engine on the host, over files memory-mapped
//! (`--table NAME=PATH` for each); the tests and the benchmark compare the guest with it.
//! Same options, output and exit codes as the guest.

use famfs_sql::args::{USAGE, parse, read_sql};
use famfs_sql::datafusion;
use famfs_sql::query::Summary;
use famfs_sql::session::{SessionOptions, new_session};
use std::io::Write;

fn main() {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("sql-native: {message}");
            }
            eprintln!("usage: sql-native {USAGE}");
            std::process::exit(2);
        }
    };
    let sql = read_sql(&args.sql).unwrap_or_else(|e| fail(&format!("cannot read the query from standard input: {e}")));
    let mut options = SessionOptions::default();
    if let Some(bytes) = args.memory_pool {
        options.memory_pool = usize::try_from(bytes).unwrap_or(usize::MAX);
    }
    if let Some(rows) = args.batch_size {
        options.batch_size = rows;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let runtime = famfs_sql::query::runtime().unwrap_or_else(|e| fail(&format!("cannot start the executor: {e}")));
    let result = runtime.block_on(async {
        let started = std::time::Instant::now();
        let ctx = new_session(options)?;
        famfs_sql::native::register_tables(&ctx, &args.tables).await?;
        let tables = started.elapsed();
        let rows = famfs_sql::query::run(&ctx, &sql, args.format, &mut out).await?;
        Ok::<_, datafusion::error::DataFusionError>(Summary { rows, tables, query: started.elapsed() - tables })
    });
    match result {
        Ok(summary) if args.timing => eprintln!("sql-native: {}", summary.timing_line()),
        Ok(_) => {}
        Err(e) => {
            let _ = out.flush();
            fail(&famfs_sql::query::one_line(&e));
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("sql-native: {message}");
    std::process::exit(1)
}
