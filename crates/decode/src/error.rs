//! Errors of the capture-file reader.

use thiserror::Error;

/// Why a capture file could not be read further.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The underlying reader failed.
    #[error("I/O error while reading capture: {0}")]
    Io(#[from] std::io::Error),
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file (magic {0:#010x})")]
    BadMagic(u32),
    /// The file ends in the middle of a header or record.
    #[error("capture file truncated inside a {0}")]
    Truncated(&'static str),
    /// A record or block is larger than the reader accepts.
    #[error("record of {len} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// Length announced by the file.
        len: u64,
        /// The limit ([`crate::MAX_RECORD_LEN`]).
        limit: u32,
    },
    /// A structural field is inconsistent (block length, captured length, ...).
    #[error("malformed capture file: {0}")]
    Malformed(&'static str),
    /// A pcapng packet refers to an interface that no IDB declared.
    #[error("pcapng packet refers to undeclared interface {0}")]
    UnknownInterface(u32),
}
