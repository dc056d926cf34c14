//! Quoting user input back, bounded: every warning, log line, Event and error that names a
//! value from a request quotes at most [`QUOTED_CHARS`] characters of it (and says how long
//! it was), so a hostile multi-megabyte annotation costs a few hundred bytes of answer.

use std::fmt;

/// How many characters of a user's value are quoted back.
pub const QUOTED_CHARS: usize = 64;

/// A value quoted as a Rust/JSON-style string, cut after [`QUOTED_CHARS`] characters with
/// its length in bytes appended: `"lots"`, or `"aaaa…"… (2900000 bytes)`.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match s.char_indices().nth(QUOTED_CHARS) {
            None => write!(f, "{s:?}"),
            Some((cut, _)) => write!(f, "{:?}… ({} bytes)", &s[..cut], s.len()),
        }
    }
}

/// [`Quoted`] as a `String`.
pub fn quote(s: &str) -> String {
    Quoted(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quote("lots"), r#""lots""#);
        assert_eq!(quote("a\"b"), r#""a\"b""#);
    }

    #[test]
    fn long_values_are_cut_and_measured() {
        let hostile = "\u{7f}".repeat(3_000_000);
        let q = quote(&hostile);
        assert!(q.len() < 500, "{} bytes", q.len());
        assert!(q.ends_with("… (3000000 bytes)"), "{q}");
        let wide = "é".repeat(100);
        assert!(quote(&wide).starts_with(&format!("{:?}", "é".repeat(64))));
    }
}
