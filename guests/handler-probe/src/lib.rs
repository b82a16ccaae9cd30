//! `handler-probe`: a handler that misbehaves on request, for the tests of hosts that serve
//! handlers (famfs-serve). Requests:
//! - `echo:BYTES`: replies BYTES;
//! - `len:NAME`: replies the dataset's length;
//! - `sum:NAME`: maps the dataset and replies the sum of its bytes;
//! - `spin-read:NAME`: maps the dataset and sums it over and over, never returning (a media
//!   error or a timeout must stop it);
//! - `error:MESSAGE`: returns the error MESSAGE;
//! - `spin`: loops forever (a timeout must stop it);
//! - `trap`: executes `unreachable`;
//! - `grow`: allocates until the memory limit stops it.

use std::hint::black_box;

struct Probe;

impl famfs_guest_handler::Guest for Probe {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, String> {
        if let Some(rest) = input.strip_prefix(b"echo:") {
            return Ok(rest.to_vec());
        }
        if let Some(name) = input.strip_prefix(b"len:") {
            return Ok(open(name)?.len().to_string().into_bytes());
        }
        if let Some(name) = input.strip_prefix(b"sum:") {
            let ds = open(name)?;
            let m = ds.map().map_err(|e| format!("map: {e}"))?;
            return Ok(byte_sum(m.as_slice()).to_string().into_bytes());
        }
        if let Some(name) = input.strip_prefix(b"spin-read:") {
            let ds = open(name)?;
            let m = ds.map().map_err(|e| format!("map: {e}"))?;
            let mut total = 0u64;
            loop {
                total = total.wrapping_add(byte_sum(black_box(m.as_slice())));
                black_box(total);
            }
        }
        if let Some(message) = input.strip_prefix(b"error:") {
            return Err(String::from_utf8_lossy(message).into_owned());
        }
        match input.as_slice() {
            b"spin" => loop {
                black_box(&input);
            },
            b"trap" => std::process::abort(),
            b"grow" => {
                let mut kept = Vec::new();
                loop {
                    kept.push(black_box(vec![1u8; 16 << 20]));
                }
            }
            _ => Err(format!("unknown request {:?}", String::from_utf8_lossy(&input))),
        }
    }
}

fn open(name: &[u8]) -> Result<famfs_guest::Dataset, String> {
    let name = String::from_utf8_lossy(name).into_owned();
    famfs_guest::Dataset::open(&name).map_err(|e| format!("{name}: {e}"))
}

fn byte_sum(b: &[u8]) -> u64 {
    b.iter().map(|&x| u64::from(x)).sum()
}

famfs_guest_handler::export!(Probe);
