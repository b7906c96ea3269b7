//! Sizes and rates as people type them: `2MiB`, `500KiB`, `10MB`, `1.5GiB`,
//! `unlimited`. One parser serves every flag, the config file and the prompt's
//! `limit` command. A bare number is bytes; `0` or `unlimited` means no limit.
//! Link rates for the lab are bits per second in `tc` style (`20mbit`).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{0:?} is not a size: use a number with an optional unit such as 16KiB, 4MiB or 1GB")]
    Size(String),
    #[error("{0:?} is not a rate: use bytes per second such as 500KiB, 2MiB, 10MB, or 0/unlimited")]
    Rate(String),
    #[error("{0:?} is not a bit rate: use tc units such as 800kbit, 20mbit or 1gbit")]
    BitRate(String),
}

fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..end].parse().ok()?;
    Some((n, s[end..].trim()))
}

fn multiplier(unit: &str) -> Option<f64> {
    const K: f64 = 1024.0;
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" | "ki" => K,
        "m" | "mib" | "mi" => K * K,
        "g" | "gib" | "gi" => K * K * K,
        "t" | "tib" | "ti" => K * K * K * K,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return None,
    })
}

/// Parses a size in bytes: `16384`, `16KiB`, `4MiB`, `1GB`, `1.5GiB`.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Size(s.to_owned());
    let (n, unit) = split_number(s).ok_or_else(err)?;
    let bytes = n * multiplier(unit).ok_or_else(err)?;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

/// A rate limit in bytes per second; `None` means unlimited.
pub fn parse_rate(s: &str) -> Result<Option<u64>, UnitError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let t = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("ps"))
        .unwrap_or(t);
    let n = parse_size(t).map_err(|_| UnitError::Rate(s.to_owned()))?;
    Ok((n > 0).then_some(n))
}

/// A link rate in bits per second, `tc` style: `bit`, `kbit`, `mbit`, `gbit`
/// (decimal, as tc reads them).
pub fn parse_bit_rate(s: &str) -> Result<u64, UnitError> {
    let err = || UnitError::BitRate(s.to_owned());
    let (n, unit) = split_number(s).ok_or_else(err)?;
    let m = match unit.to_ascii_lowercase().as_str() {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(err()),
    };
    let v = n * m;
    if !v.is_finite() || v < 1.0 || v >= u64::MAX as f64 {
        return Err(err());
    }
    Ok(v.round() as u64)
}

/// `1.5 MiB`, `512 B`: IEC units, three significant digits.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[i])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[i])
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

/// `12.3 MiB/s`.
pub fn format_rate(bytes_per_sec: u64) -> String {
    format!("{}/s", format_bytes(bytes_per_sec))
}

/// A limit for display: `2.00 MiB/s` or `unlimited`.
pub fn format_limit(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".into(), format_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16384"), Ok(16384));
        assert_eq!(parse_size("16KiB"), Ok(16384));
        assert_eq!(parse_size("16 kib"), Ok(16384));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert!(parse_size("").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("2MiB"), Ok(Some(2 << 20)));
        assert_eq!(parse_rate("500KiB/s"), Ok(Some(500 << 10)));
        assert_eq!(parse_rate("0"), Ok(None));
        assert_eq!(parse_rate("unlimited"), Ok(None));
        assert!(matches!(parse_rate("fast"), Err(UnitError::Rate(_))));
    }

    #[test]
    fn bit_rates() {
        assert_eq!(parse_bit_rate("20mbit"), Ok(20_000_000));
        assert_eq!(parse_bit_rate("800kbit"), Ok(800_000));
        assert!(parse_bit_rate("20MiB").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.50 KiB");
        assert_eq!(format_bytes(256 << 20), "256 MiB");
        assert_eq!(format_rate(10 << 20), "10.0 MiB/s");
        assert_eq!(format_limit(None), "unlimited");
    }
}
