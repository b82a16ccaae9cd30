//! Sizes as people type them: `4096`, `64k`, `8M`, `2G`, `1T` (powers of 1024; `KiB`/`MB`
//! spellings accepted), as famfs' CLI does.

/// Parses a size. Errors say what was wrong.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("'{text}' is not a size: it must start with a number, e.g. 512M or 2G"));
    }
    let n: u64 = num.parse().map_err(|_| format!("'{text}' is too large"))?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("'{text}' has an unknown unit '{suffix}'; use k, M, G or T (powers of 1024)")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("'{text}' is too large"))
}

/// Formats bytes with a binary unit for people (`3.0 MiB`).
pub fn format_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("8m"), Ok(8 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert!(parse_size("M").unwrap_err().contains("start with a number"));
        assert!(parse_size("3X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("99999999999999999999").unwrap_err().contains("too large"));
        assert!(parse_size("17179869184G").unwrap_err().contains("too large"));
        assert_eq!(format_size(17), "17 B");
        assert_eq!(format_size(3 << 20), "3.0 MiB");
    }
}
