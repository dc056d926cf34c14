//! Go's parsing and printing, where Linkerd's injector passes a value through them: annotation
//! durations (`time.ParseDuration`, then written as whole milliseconds or seconds), the CPU
//! ratio (`strconv.ParseFloat`), and numbers printed by its chart templates (the chart reads
//! its values back from YAML, so a number is a float64 printed with `%v`).

const ERR: &str = "not a duration (e.g. 30s, 1m30s, 500ms)";

/// Go's duration units, in nanoseconds.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// A Go duration (`30s`, `1m30s`, `1.5h`, `500ms`, `0`) in nanoseconds, parsed as
/// `time.ParseDuration` does (same overflow limits, same float step for fractions). A negative
/// duration is refused: no proxy setting takes one.
pub fn duration_nanos(s: &str) -> Result<i64, String> {
    const LIMIT: u64 = 1 << 63;
    let bad = || ERR.to_owned();
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let b = rest.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(bad());
        }
        let mut i = 0;
        let mut whole: u64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if whole > LIMIT / 10 {
                return Err(bad());
            }
            whole = whole * 10 + u64::from(b[i] - b'0');
            if whole > LIMIT {
                return Err(bad());
            }
            i += 1;
        }
        let pre = i > 0;
        let (mut frac, mut scale, mut post) = (0u64, 1f64, false);
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let start = i;
            let mut overflow = false;
            while i < b.len() && b[i].is_ascii_digit() {
                // Past 2^63 Go stops taking digits (precision only), without an error.
                if !overflow {
                    if frac > (LIMIT - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = frac * 10 + u64::from(b[i] - b'0');
                        if y > LIMIT {
                            overflow = true;
                        } else {
                            frac = y;
                            scale *= 10.0;
                        }
                    }
                }
                i += 1;
            }
            post = i > start;
        }
        if !pre && !post {
            return Err(bad());
        }
        let unit_start = i;
        while i < b.len() && !(b[i] == b'.' || b[i].is_ascii_digit()) {
            i += 1;
        }
        // `i` stops at an ASCII byte or the end, so both slices are on char boundaries.
        let unit = &rest[unit_start..i];
        let Some(&(_, nanos)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(bad());
        };
        if whole > LIMIT / nanos {
            return Err(bad());
        }
        let mut v = whole * nanos;
        if frac > 0 {
            // Go's float step: exact to the nanosecond for fractions of an hour.
            v += (frac as f64 * (nanos as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(bad());
            }
        }
        // Go's unsigned sum wraps; kept so the same text gives the same value.
        total = total.wrapping_add(v);
        if total > LIMIT {
            return Err(bad());
        }
        rest = &rest[i..];
    }
    if neg && total > 0 {
        return Err("negative; a duration here must be 0 or more".into());
    }
    i64::try_from(total).map_err(|_| bad())
}

/// Go's `Duration.Seconds()`.
fn seconds(nanos: i64) -> f64 {
    (nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / 1e9
}

/// A Go duration as Linkerd's injector writes it for the proxy: whole milliseconds
/// (`int(d.Seconds()*1000)`, so `1.5ms` is `1ms`).
pub fn duration_millis(s: &str) -> Result<String, String> {
    let d = duration_nanos(s)?;
    Ok(format!("{}ms", (seconds(d) * 1000.0) as i64))
}

/// A Go duration as whole seconds (`int(d.Seconds())`, so `90.9s` is `90s`).
pub fn duration_seconds(s: &str) -> Result<String, String> {
    let d = duration_nanos(s)?;
    Ok(format!("{}s", seconds(d) as i64))
}

/// A Go duration in whole seconds, truncated as Go's `int64(d.Seconds())`.
pub fn duration_whole_seconds(s: &str) -> Result<i64, String> {
    let d = duration_nanos(s)?;
    if d < 0 {
        return Err("a duration of 0 or more is expected".into());
    }
    Ok(seconds(d) as i64)
}

/// Go's `%v` of a float64: the shortest digits that read back as the same number, with an
/// exponent of at least two digits when the decimal exponent is below -4 or 6 and above
/// (`1e+06`, `1.5e-05`).
pub fn float(f: f64) -> String {
    // Rust's shortest digits, then that many digits rounded exactly: when two shortest
    // candidates are equally near, Go takes the even one (`932879369955599.25` prints as
    // `9.328793699555992e+14`), as exact rounding does.
    let shortest = format!("{f:e}");
    let digits = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let sci = format!("{:.*e}", digits.saturating_sub(1), f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !f.is_finite() {
        return format!("{f}");
    }
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.unsigned_abs());
    }
    // The same digits without an exponent.
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let point = exp + 1;
    if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        format!("{sign}0.{zeros}{digits}")
    } else {
        let point = point as usize;
        if digits.len() > point {
            format!("{sign}{}.{}", &digits[..point], &digits[point..])
        } else {
            format!("{sign}{digits}{}", "0".repeat(point - digits.len()))
        }
    }
}

/// A whole number as Linkerd's chart prints it (through a float64: `1e+06` for a million).
pub fn number(n: i64) -> String {
    float(n as f64)
}

/// `config.linkerd.io/proxy-cpu-ratio-limit`: a number strictly between 0 and 1, as
/// `strconv.ParseFloat` reads it (hexadecimal floats aside), printed as the chart prints it.
pub fn ratio(s: &str) -> Result<String, String> {
    let f: f64 = s
        .parse()
        .map_err(|_| "not a number (e.g. 0.5)".to_owned())?;
    if f > 0.0 && f < 1.0 {
        Ok(float(f))
    } else {
        Err("must be more than 0 and less than 1".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_parses_them() {
        let ms = |s: &str| duration_millis(s).unwrap();
        // Each checked against Go's int(d.Seconds()*1000).
        for (s, want) in [
            ("1.001s", "1000ms"),
            ("1.5ms", "1ms"),
            ("100us", "0ms"),
            ("1h", "3600000ms"),
            ("0.1s", "100ms"),
            ("2.3s", "2300ms"),
            ("+5s", "5000ms"),
            ("5.s", "5000ms"),
            ("1m30.5s", "90500ms"),
            ("9.999999999s", "9999ms"),
            ("0", "0ms"),
            ("-0s", "0ms"),
            ("1\u{b5}s", "0ms"),
        ] {
            assert_eq!(ms(s), want, "{s}");
        }
        assert_eq!(duration_seconds("2m30s").unwrap(), "150s");
        assert_eq!(duration_seconds("90.9s").unwrap(), "90s");
        for bad in [
            "",
            "30",
            "s",
            ".s",
            "3 s",
            "1d",
            "-5s",
            "1..5s",
            "1.2.3s",
            "5sec",
            "+",
            "-",
            "9223372036854775808s",
            "2562048h",
        ] {
            assert!(duration_nanos(bad).is_err(), "{bad}");
        }
        assert_eq!(
            duration_nanos("2562047h").unwrap(),
            2562047 * 3_600_000_000_000
        );
    }

    #[test]
    fn floats_as_go_prints_them() {
        // Each checked against Go's fmt.Sprintf("%v", float64(x)).
        for (f, want) in [
            (1.0, "1"),
            (2.0, "2"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (12345678.0, "1.2345678e+07"),
            (1e20, "1e+20"),
            (1e21, "1e+21"),
            (0.5, "0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (0.0000123456, "1.23456e-05"),
            (1.0 / 3.0, "0.3333333333333333"),
            (9007199254740993.0, "9.007199254740992e+15"),
            (1e100, "1e+100"),
            // Exact ties (the quarter is exact at this size).
            (932_879_369_955_599.0 + 0.25, "9.328793699555992e+14"),
            (2_138_851_105_589_615.0 + 0.25, "2.1388511055896152e+15"),
        ] {
            assert_eq!(float(f), want, "{f}");
        }
        assert_eq!(number(0), "0");
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio("0.50").unwrap(), "0.5");
        assert_eq!(ratio(".25").unwrap(), "0.25");
        assert_eq!(ratio("5e-5").unwrap(), "5e-05");
        for bad in ["0", "1", "1.0", "-0.5", "NaN", "inf", "half", ""] {
            assert!(ratio(bad).is_err(), "{bad}");
        }
    }
}
