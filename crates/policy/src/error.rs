//! Configuration errors with file, line and column, rendered like rustc.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// The text a configuration was read from, kept so that errors found after
/// deserialization (in [`crate::Policy::compile`]) can still be located.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceText {
    /// File name as given to [`crate::load_file`] / [`crate::load_str`].
    pub name: String,
    pub text: String,
}

/// A configuration error: where it is and what is wrong.
///
/// `Display` renders `FILE:LINE:COL: message`, then the offending source
/// line with a caret under the offending value, like rustc:
///
/// ```text
/// config/geofence.toml:11:14: unknown jurisdiction `prcc` (defined: hk_macau, prc; ...)
///    |
/// 11 | to = ["prc", "prcc"]
///    |              ^^^^^^
/// ```
///
/// `line` and `col` are 1-based (`col` counts characters, not bytes). They
/// are 0 only for errors that have no position in any file (the file could
/// not be read, or a hand-built [`crate::Config`] without source text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// The whole source line the error points into (empty without position).
    pub snippet: String,
    /// Number of characters to underline, at least 1 when there is a position.
    pub width: usize,
}

impl ConfigError {
    /// An error without a position in the file (I/O errors).
    pub fn whole_file(file: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line: 0,
            col: 0,
            message: message.into(),
            snippet: String::new(),
            width: 0,
        }
    }

    /// An error at byte range `span` of `text`.
    pub fn at(
        file: &str,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, col, snippet, width) = position(text, span);
        ConfigError {
            file: file.to_string(),
            line,
            col,
            message: message.into(),
            snippet,
            width,
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if self.line == 0 {
            out.push_str(&format!("{}: {}", self.file, self.message));
            return out;
        }
        out.push_str(&format!(
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        ));
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        out.push_str(&format!("\n{pad} |\n{num} | {}\n{pad} | ", self.snippet));
        // Keep tabs so the caret lines up under tab-indented text.
        for c in self.snippet.chars().take(self.col.saturating_sub(1)) {
            out.push(if c == '\t' { '\t' } else { ' ' });
        }
        out.push_str(&"^".repeat(self.width.max(1)));
        out
    }
}

/// Converts a byte span into (line, col, source line, underline width).
/// Tolerates spans outside the text or off char boundaries.
pub(crate) fn position(text: &str, span: Range<usize>) -> (usize, usize, String, usize) {
    let mut start = span.start.min(text.len());
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = span.end.clamp(start, text.len());
    while end > start && !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = text.get(..start).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text
        .get(start..)
        .and_then(|rest| rest.find('\n'))
        .map(|i| start + i)
        .unwrap_or(text.len());
    let col = text
        .get(line_start..start)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    let snippet = text
        .get(line_start..line_end)
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_string();
    let in_line_end = end.min(line_end);
    let width = text
        .get(start..in_line_end)
        .map(|s| s.trim_end_matches('\r').chars().count())
        .unwrap_or(0)
        .max(1);
    (line, col, snippet, width)
}

/// One step of a path into the TOML document: a key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(s: &str) -> Seg {
        Seg::Key(s.to_string())
    }
}

impl From<String> for Seg {
    fn from(s: String) -> Seg {
        Seg::Key(s)
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Seg {
        Seg::Index(i)
    }
}

/// Builds a path: `tpath!["rule", 3, "to", 1]`.
macro_rules! tpath {
    ($($s:expr),* $(,)?) => { vec![$($crate::error::Seg::from($s)),*] };
}
pub(crate) use tpath;

/// Where a validation error points: the value at `path`, or its key.
#[derive(Debug, Clone)]
pub(crate) struct Loc {
    pub path: Vec<Seg>,
    pub key: bool,
}

impl Loc {
    pub fn value(path: Vec<Seg>) -> Loc {
        Loc { path, key: false }
    }
    pub fn key(path: Vec<Seg>) -> Loc {
        Loc { path, key: true }
    }
}

/// A validation error before it is placed in a file.
#[derive(Debug, Clone)]
pub(crate) struct Invalid {
    pub loc: Loc,
    pub message: String,
}

impl Invalid {
    pub fn new(loc: Loc, message: impl Into<String>) -> Invalid {
        Invalid {
            loc,
            message: message.into(),
        }
    }

    /// Places the error in `source` by walking the TOML document along the
    /// path; falls back to the deepest existing parent, then to 1:1.
    pub fn place(self, source: Option<&Arc<SourceText>>) -> ConfigError {
        let Some(src) = source else {
            return ConfigError::whole_file(
                "<config>",
                format!("{}: {}", render_path(&self.loc.path), self.message),
            );
        };
        let span = locate(&src.text, &self.loc.path[..], self.loc.key).unwrap_or(0..0);
        ConfigError::at(&src.name, &src.text, span, self.message)
    }
}

fn render_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Span of the value (or key) at `path`, or of the deepest parent found.
pub(crate) fn locate(text: &str, path: impl AsRef<[Seg]>, want_key: bool) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let path = path.as_ref();
    let doc = DeTable::parse(text).ok()?;
    let mut best: Option<Range<usize>> = None;
    let mut cur_table = Some(doc.get_ref());
    let mut cur_value: Option<&DeValue<'_>> = None;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match seg {
            Seg::Key(k) => {
                let table = match (cur_table, cur_value) {
                    (Some(t), _) => t,
                    (None, Some(v)) => v.as_table()?,
                    (None, None) => return best,
                };
                let Some((key, value)) = table.get_key_value(k.as_str()) else {
                    return best;
                };
                best = Some(if last && want_key {
                    key.span()
                } else {
                    value.span()
                });
                cur_table = None;
                cur_value = Some(value.get_ref());
            }
            Seg::Index(idx) => {
                let Some(array) = cur_value.and_then(|v| v.as_array()) else {
                    return best;
                };
                let Some(item) = array.get(*idx) else {
                    return best;
                };
                best = Some(item.span());
                cur_table = None;
                cur_value = Some(item.get_ref());
            }
        }
    }
    best
}

impl fmt::Display for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Key(k) => f.write_str(k),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_chars_and_lines() {
        let text = "a = 1\nb = \"é\"  # x\nc = [1, 2]\n";
        let off = text.find("[1").expect("find");
        let (line, col, snip, width) = position(text, off..off + 6);
        assert_eq!((line, col, snip.as_str(), width), (3, 5, "c = [1, 2]", 6));
        let off = text.find("# x").expect("find");
        let (line, col, _, _) = position(text, off..off + 1);
        assert_eq!((line, col), (2, 10));
        // Out of range spans do not panic.
        let (line, _, _, width) = position(text, 999..1000);
        assert_eq!((line, width), (4, 1));
    }

    #[test]
    fn display_is_rustc_like() {
        let text = "x = 1\nto = [\"prcc\"]\n";
        let off = text.find("\"prcc\"").expect("find");
        let e = ConfigError::at("f.toml", text, off..off + 6, "unknown jurisdiction `prcc`");
        assert_eq!(
            e.to_string(),
            "f.toml:2:7: unknown jurisdiction `prcc`\n  |\n2 | to = [\"prcc\"]\n  |       ^^^^^^"
        );
    }

    #[test]
    fn locate_walks_arrays_of_tables() {
        let text = "[[rule]]\nname = \"a\"\n[[rule]]\nname = \"b\"\nto = [\"x\", \"y\"]\n";
        let span = locate(text, tpath!["rule", 1, "to", 1], false).expect("span");
        assert_eq!(text.get(span), Some("\"y\""));
        let span = locate(text, tpath!["rule", 1, "name"], true).expect("span");
        assert_eq!(text.get(span), Some("name"));
        let span = locate(text, tpath!["rule", 0, "apps"], false).expect("span");
        // Missing leaf: falls back to the parent, a table: its header.
        assert_eq!(text.get(span), Some("[[rule]]"));
    }
}
