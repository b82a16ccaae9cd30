//! The SQL guest as a handler (`famfs-run --invoke handle`, or a famfs-serve function: `POST
//! /invoke/NAME`): a query in, its result out.
//!
//! The input is the SQL text itself (the result is JSON), or a JSON object:
//! `{"sql": "...", "format": "json" | "csv" | "arrow", "tables": {"NAME": "PATH"},
//! "memory_pool": BYTES, "batch_size": ROWS, "window": BYTES}` (only `sql` is required). `arrow` replies with an
//! Arrow IPC stream. Errors (bad SQL, unknown tables, a query over its memory pool) are the
//! handler's error: DataFusion's message.

use famfs_sql::famfs::{Request, execute};
use famfs_sql::output::Format;

struct Sql;

impl famfs_guest_handler::Guest for Sql {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let request = parse(&input)?;
        let mut out = Vec::new();
        execute(&request, &mut out)?;
        Ok(out)
    }
}

famfs_guest_handler::export!(Sql);

// Built without LTO: keep the export the host passes the input and gets lists through.
famfs_guest::export_cabi_realloc!();

/// The request in `input`: SQL text, or the JSON object the module docs describe.
fn parse(input: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(input).map_err(|_| "the request is not UTF-8".to_string())?;
    if !text.trim_start().starts_with('{') {
        return Ok(Request { sql: text.to_string(), format: Format::Json, ..Request::default() });
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the request is not valid JSON: {e}"))?;
    let object = value.as_object().ok_or("the request must be SQL text or a JSON object")?;
    let mut request = Request { format: Format::Json, ..Request::default() };
    for (key, v) in object {
        match key.as_str() {
            "sql" => request.sql = v.as_str().ok_or("`sql` must be a string")?.to_string(),
            "format" => request.format = v.as_str().ok_or("`format` must be a string")?.parse()?,
            "tables" => {
                let tables = v.as_object().ok_or("`tables` must be an object of NAME: PATH")?;
                for (name, path) in tables {
                    let path = path.as_str().ok_or("`tables` must be an object of NAME: PATH")?;
                    request.tables.push((name.clone(), path.to_string()));
                }
            }
            "memory_pool" => request.memory_pool = Some(v.as_u64().ok_or("`memory_pool` must be a number of bytes")?),
            "batch_size" => {
                let rows = v.as_u64().filter(|n| *n > 0).ok_or("`batch_size` must be a positive number")?;
                request.batch_size = Some(usize::try_from(rows).unwrap_or(usize::MAX));
            }
            "window" => {
                request.window =
                    Some(v.as_u64().filter(|n| *n > 0).ok_or("`window` must be a positive number of bytes")?)
            }
            other => {
                return Err(format!(
                    "unknown field `{other}` in the request (sql, format, tables, memory_pool, batch_size, window)"
                ));
            }
        }
    }
    if request.sql.trim().is_empty() {
        return Err("the request has no `sql`".into());
    }
    Ok(request)
}
