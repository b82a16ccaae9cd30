//! Read-only commands: `ls`, `stat`, `log`.

use crate::Global;
use crate::modes::permissions;
use anyhow::Result;
use famfs::namespace::{DirMeta, EntryNode};
use famfs::{EntryBody, Famfs, FileMap, FileMeta, Lookup};
use serde_json::{Value, json};
use std::io::Write;

/// `ls [-l] [-R] [--json] [PATH]`
#[derive(clap::Args)]
pub struct LsArgs {
    /// Long listing: permissions, owner, size.
    #[arg(short, long)]
    long: bool,
    /// List sub-directories recursively.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// One JSON array of every listed entry.
    #[arg(long)]
    json: bool,
    /// Directory or file (default: the root).
    #[arg(default_value = "/")]
    path: String,
}

/// `stat [--json] PATH`
#[derive(clap::Args)]
pub struct StatArgs {
    /// JSON output.
    #[arg(long)]
    json: bool,
    /// File or directory.
    path: String,
}

/// `log [--json]`
#[derive(clap::Args)]
pub struct LogArgs {
    /// JSON output: superblock, header and every entry.
    #[arg(long)]
    json: bool,
}

fn join(dir: &str, name: &str) -> String {
    let d = dir.trim_matches('/');
    if d.is_empty() { name.to_string() } else { format!("{d}/{name}") }
}

fn dir_json(path: &str, d: &DirMeta) -> Value {
    json!({"path": path, "type": "dir", "size": 0, "mode": d.mode, "permissions": permissions(true, d.mode),
           "uid": d.uid, "gid": d.gid, "entry": d.entry_index})
}

fn file_json(f: &FileMeta) -> Value {
    json!({"path": f.path.as_str(), "type": "file", "size": f.size, "mode": f.mode,
           "permissions": permissions(false, f.mode), "uid": f.uid, "gid": f.gid, "entry": f.entry_index})
}

fn node_json(path: &str, n: &EntryNode<'_>) -> Value {
    match n {
        EntryNode::Dir(d) => dir_json(path, d),
        EntryNode::File(f) => file_json(f),
    }
}

fn long_line(name: &str, n: &EntryNode<'_>) -> String {
    let (is_dir, mode, uid, gid, size) = match n {
        EntryNode::Dir(d) => (true, d.mode, d.uid, d.gid, 0),
        EntryNode::File(f) => (false, f.mode, f.uid, f.gid, f.size),
    };
    format!("{} {uid:>6} {gid:>6} {size:>14} {name}{}", permissions(is_dir, mode), if is_dir { "/" } else { "" })
}

pub fn ls(g: &Global, a: LsArgs) -> Result<i32> {
    let fs = Famfs::open(g.device()?)?;
    let ns = fs.namespace();
    let mut out = std::io::stdout().lock();
    if let Lookup::File(f) = ns.lookup(&a.path)? {
        if a.json {
            serde_json::to_writer_pretty(&mut out, &json!([file_json(f)]))?;
            writeln!(out)?;
        } else if a.long {
            writeln!(out, "{}", long_line(f.path.as_str(), &EntryNode::File(f)))?;
        } else {
            writeln!(out, "{}", f.path)?;
        }
        return Ok(0);
    }
    let mut json_rows = Vec::new();
    let mut stack = vec![a.path.trim_matches('/').to_string()];
    let mut first = true;
    while let Some(dir) = stack.pop() {
        let entries = ns.read_dir(&dir)?;
        if a.recursive && !a.json {
            if !first {
                writeln!(out)?;
            }
            writeln!(out, "/{dir}:")?;
        }
        first = false;
        let mut subdirs = Vec::new();
        for e in &entries {
            let path = join(&dir, e.name);
            if a.json {
                json_rows.push(node_json(&path, &e.node));
            } else if a.long {
                writeln!(out, "{}", long_line(e.name, &e.node))?;
            } else {
                writeln!(out, "{}{}", e.name, if matches!(e.node, EntryNode::Dir(_)) { "/" } else { "" })?;
            }
            if a.recursive && matches!(e.node, EntryNode::Dir(_)) {
                subdirs.push(path);
            }
        }
        // Depth-first in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    if a.json {
        serde_json::to_writer_pretty(&mut out, &json_rows)?;
        writeln!(out)?;
    }
    Ok(0)
}

fn map_lines(map: &FileMap) -> Vec<String> {
    let ext = |i: usize, e: &famfs::Extent| {
        format!("    {i:>2}: offset {:#x} length {:#x} (device {})", e.offset, e.len, e.devindex)
    };
    match map {
        FileMap::Simple { extents } => {
            let mut v = vec![format!("  map: simple, {} extent(s)", extents.len())];
            v.extend(extents.iter().enumerate().map(|(i, e)| ext(i, e)));
            v
        }
        FileMap::Interleaved { chunk_size, strips } => {
            let mut v = vec![format!("  map: interleaved, {} strip(s), chunk {:#x}", strips.len(), chunk_size)];
            v.extend(strips.iter().enumerate().map(|(i, e)| ext(i, e)));
            v
        }
    }
}

pub fn stat(g: &Global, a: StatArgs) -> Result<i32> {
    let fs = Famfs::open(g.device()?)?;
    let mut out = std::io::stdout().lock();
    match fs.namespace().lookup(&a.path)? {
        Lookup::File(f) => {
            if a.json {
                let mut v = file_json(f);
                v["allocated"] = json!(f.map.capacity());
                v["map"] = serde_json::to_value(&f.map)?;
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            } else {
                writeln!(out, "  path: {}", f.path)?;
                writeln!(out, "  type: regular file")?;
                writeln!(out, "  size: {} (allocated {})", f.size, f.map.capacity())?;
                writeln!(
                    out,
                    "  mode: {:04o} ({})  uid: {}  gid: {}",
                    f.mode,
                    permissions(false, f.mode),
                    f.uid,
                    f.gid
                )?;
                writeln!(out, "  log entry: {}", f.entry_index)?;
                for l in map_lines(&f.map) {
                    writeln!(out, "{l}")?;
                }
            }
        }
        Lookup::Dir(d) => {
            let path = a.path.trim_matches('/');
            if a.json {
                serde_json::to_writer_pretty(&mut out, &dir_json(path, d))?;
                writeln!(out)?;
            } else {
                writeln!(out, "  path: /{path}")?;
                writeln!(out, "  type: directory")?;
                writeln!(
                    out,
                    "  mode: {:04o} ({})  uid: {}  gid: {}",
                    d.mode,
                    permissions(true, d.mode),
                    d.uid,
                    d.gid
                )?;
                match d.entry_index {
                    Some(i) => writeln!(out, "  log entry: {i}")?,
                    None => writeln!(out, "  log entry: none (root)")?,
                }
            }
        }
    }
    Ok(0)
}

pub fn log(g: &Global, a: LogArgs) -> Result<i32> {
    let fs = Famfs::open(g.device()?)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let entries: Vec<Value> = fs
            .entries()
            .iter()
            .enumerate()
            .map(|(i, e)| match e {
                Ok(e) => {
                    let mut v = serde_json::to_value(e).expect("entries serialize");
                    v["index"] = json!(i);
                    v["valid"] = json!(true);
                    v
                }
                Err(err) => json!({"index": i, "valid": false, "error": err.to_string(),
                                   "offset": err.offset(), "field": err.field()}),
            })
            .collect();
        let sb = fs.superblock();
        let mut sbv = serde_json::to_value(sb)?;
        sbv["crc"] = json!(format!("{:#x}", sb.crc()));
        let v = json!({"superblock": sbv, "log": fs.log_header(), "entries": entries});
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(0);
    }
    let h = fs.log_header();
    writeln!(out, "log: {} of {} entries used, next seqnum {}", h.next_index, h.last_index + 1, h.next_seqnum)?;
    for (i, e) in fs.entries().iter().enumerate() {
        match e {
            Err(err) => writeln!(out, "{i:>6} INVALID: {err}")?,
            Ok(e) => match &e.body {
                EntryBody::File(f) => {
                    writeln!(
                        out,
                        "{i:>6} file  {} size {} mode {:04o} uid {} gid {}",
                        f.path, f.size, f.mode, f.uid, f.gid
                    )?;
                    for l in map_lines(&f.map) {
                        writeln!(out, "      {l}")?;
                    }
                }
                EntryBody::Mkdir(d) => {
                    writeln!(out, "{i:>6} mkdir {} mode {:04o} uid {} gid {}", d.path, d.mode, d.uid, d.gid)?
                }
                EntryBody::AddDaxdev(d) => {
                    writeln!(out, "{i:>6} add-daxdev index {} size {} uuid {}", d.index, d.size, d.uuid)?
                }
                EntryBody::Other { entry_type, .. } => writeln!(out, "{i:>6} type {entry_type} (ignored)")?,
            },
        }
    }
    Ok(0)
}
