//! Log levels that journald understands. Under systemd the daemon's stderr
//! is a journald stream (`JOURNAL_STREAM` is set), and journald stores every
//! line at the unit's default priority (info) unless the line starts with a
//! syslog priority prefix `<N>` (`SyslogLevelPrefix=yes`, the default). This
//! writer prefixes each log line with its level's priority, so that
//! `journalctl -u geofenced -p err` shows the daemon's errors (a refused
//! reload, a refused database, a table restored after tampering).

use std::io::{self, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// syslog priority of a tracing level (err 3, warning 4, info 6, debug 7).
pub fn priority(level: &Level) -> &'static [u8] {
    match *level {
        Level::ERROR => b"<3>",
        Level::WARN => b"<4>",
        Level::INFO => b"<6>",
        _ => b"<7>",
    }
}

/// Whether stderr goes to journald.
pub fn stderr_is_journal() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some_and(|v| !v.is_empty())
}

/// A [`MakeWriter`] for stderr that prefixes each event with its priority.
pub struct Prefixed;

/// Writes one event: the prefix before its first byte.
pub struct PrefixWriter {
    prefix: Option<&'static [u8]>,
}

impl Write for PrefixWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut err = io::stderr().lock();
        if let Some(p) = self.prefix.take() {
            err.write_all(p)?;
        }
        err.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Prefixed {
    type Writer = PrefixWriter;

    fn make_writer(&'a self) -> PrefixWriter {
        PrefixWriter {
            prefix: Some(priority(&Level::INFO)),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> PrefixWriter {
        PrefixWriter {
            prefix: Some(priority(meta.level())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&Level::ERROR), b"<3>");
        assert_eq!(priority(&Level::WARN), b"<4>");
        assert_eq!(priority(&Level::INFO), b"<6>");
        assert_eq!(priority(&Level::TRACE), b"<7>");
    }
}
