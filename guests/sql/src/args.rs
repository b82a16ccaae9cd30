//! The command line shared by `sql` (the guest) and `sql-native` (the host).

use crate::output::Format;

/// The options after the program name.
pub const USAGE: &str = "[--format csv|json|arrow] [--table NAME=PATH]... [--memory-pool BYTES] [--batch-size ROWS] [--window BYTES] [--timing] QUERY
  QUERY          one SQL statement; `-` reads it from standard input
  --format       csv (default, with a header row), json (an array of objects) or arrow (an
                 Arrow IPC stream, for pyarrow.ipc.open_stream)
  --table        the file PATH is the table NAME (repeatable)
  --memory-pool  bytes the engine's operators may hold (K/M/G suffixes); a query that needs
                 more fails with \"Resources exhausted\". Default: a quarter of the memory limit
  --batch-size   rows per batch the operators produce (default 8192, at most 1048576)
  --window       read Arrow files in windows of at most this many bytes (K/M/G suffixes), whole
                 record batches each; default: whole if at most 1 GiB, else 256 MiB
  --timing       print the time taken to open the tables and to run the query on stderr";

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// How to write the result.
    pub format: Format,
    /// `--table NAME=PATH`, in order.
    pub tables: Vec<(String, String)>,
    /// `--memory-pool`, in bytes.
    pub memory_pool: Option<u64>,
    /// `--batch-size`, in rows.
    pub batch_size: Option<usize>,
    /// `--window`, in bytes.
    pub window: Option<u64>,
    /// `--timing`.
    pub timing: bool,
    /// The statement (`-`: read it from standard input).
    pub sql: String,
}

/// Parses the arguments after the program name; `Err` is what to print before the usage.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        format: Format::Csv,
        tables: Vec::new(),
        memory_pool: None,
        batch_size: None,
        window: None,
        timing: false,
        sql: String::new(),
    };
    let mut sql = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--format" => parsed.format = value("--format")?.parse()?,
            "--table" => {
                let v = value("--table")?;
                match v.split_once('=') {
                    Some((n, p)) if !n.is_empty() && !p.is_empty() => {
                        parsed.tables.push((n.to_string(), p.to_string()))
                    }
                    _ => return Err(format!("--table wants NAME=PATH, not `{v}`")),
                }
            }
            "--memory-pool" => {
                let v = value("--memory-pool")?;
                parsed.memory_pool = Some(parse_size(&v).ok_or(format!("--memory-pool: `{v}` is not a size"))?);
            }
            "--window" => {
                let v = value("--window")?;
                match parse_size(&v) {
                    Some(n) if n > 0 => parsed.window = Some(n),
                    _ => return Err(format!("--window: `{v}` is not a size")),
                }
            }
            "--batch-size" => {
                let v = value("--batch-size")?;
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => parsed.batch_size = Some(n),
                    _ => return Err(format!("--batch-size: `{v}` is not a positive number")),
                }
            }
            "--" => {
                let rest: Vec<String> = args.by_ref().collect();
                if sql.is_some() || rest.len() != 1 {
                    return Err("give exactly one QUERY".into());
                }
                sql = rest.into_iter().next();
            }
            "--timing" if inline.is_none() => parsed.timing = true,
            "-h" | "--help" => return Err(String::new()),
            f if f.starts_with("--") => return Err(format!("unknown option {f}")),
            _ if sql.is_none() => sql = Some(a),
            _ => return Err("give exactly one QUERY (quote it)".into()),
        }
    }
    parsed.sql = sql.ok_or("no QUERY")?;
    Ok(parsed)
}

/// `12`, `64K`, `512M`, `2G` (powers of 1024) to bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// The statement: `sql`, or standard input for `-`.
pub fn read_sql(sql: &str) -> std::io::Result<String> {
    if sql == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        Ok(sql.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Args, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_and_query() {
        let a = p(&["--format=json", "--table", "t=data/x.arrow", "--memory-pool", "64M", "SELECT 1"]).unwrap();
        assert_eq!(a.format, Format::Json);
        assert_eq!(a.tables, vec![("t".to_string(), "data/x.arrow".to_string())]);
        assert_eq!(a.memory_pool, Some(64 << 20));
        assert_eq!(a.sql, "SELECT 1");
        assert!(p(&["SELECT 1", "SELECT 2"]).is_err());
        assert!(p(&["--format", "xml", "SELECT 1"]).unwrap_err().contains("unknown format"));
        assert!(p(&["--table", "x", "SELECT 1"]).unwrap_err().contains("NAME=PATH"));
        assert!(p(&[]).is_err());
        assert_eq!(p(&["--", "--weird"]).unwrap().sql, "--weird");
    }
}
