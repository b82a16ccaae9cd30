//! `arrow-gen OUT ROWS [BATCH_ROWS]`: writes the sensor table of the Arrow tests (ts, sensor,
//! site, zone, device, label, celsius, count, level, ratio, ok; several types, with nulls) as an
//! uncompressed Arrow IPC file with arrow-rs, BATCH_ROWS (default 131072) rows per record batch,
//! to OUT, or to standard output for `-`. The demo's dataset generator (scripts/demo.sh) runs it
//! as a guest, in the sandbox, which lets it write nothing but its standard output:
//!
//! ```sh
//! famfs-run arrow-gen.wasm - 2000000 > readings.arrow
//! ```

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: arrow-gen OUT ROWS [BATCH_ROWS]   (writes an Arrow IPC file of ROWS sensor readings)");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !(2..=3).contains(&args.len()) {
        usage();
    }
    let out = PathBuf::from(&args[0]);
    let Ok(rows) = args[1].parse::<u64>() else { usage() };
    let batch_rows = match args.get(2).map(|b| b.parse::<usize>()) {
        None => 128 * 1024,
        Some(Ok(b)) if b > 0 => b,
        Some(_) => usage(),
    };
    let batches = arrow_gen::batches(rows, batch_rows);
    let written = if out.as_os_str() == "-" {
        let stdout = std::io::BufWriter::with_capacity(8 << 20, std::io::stdout().lock());
        arrow_gen::write(stdout, &arrow_gen::schema(), batches, 64)
    } else {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
            eprintln!("error: {} is not a directory (create it first)", dir.display());
            std::process::exit(1);
        }
        arrow_gen::write_file(&out, &arrow_gen::schema(), batches, 64)
    };
    if let Err(e) = written {
        eprintln!("error: cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}
