//! Errors of the capture sources.

use thiserror::Error;

/// Why a capture source could not be opened or read.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// A socket or file operation failed.
    #[error("capture I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A capture file is corrupt.
    #[error("capture file: {0}")]
    File(#[from] geofence_decode::DecodeError),
    /// The kernel refused to bind the NFLOG group (EPERM without CAP_NET_ADMIN,
    /// EBUSY when another process holds the group).
    #[error("binding NFLOG group {group} failed: {source}")]
    NflogBind {
        /// The group.
        group: u16,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// The kernel did not acknowledge a netlink request in time.
    #[error("no netlink acknowledgement for NFLOG group {0}")]
    NoAck(u16),
    /// No interface of that name exists (in this network namespace).
    #[error("no such network interface: {0}")]
    NoSuchInterface(String),
    /// libpcap could not open, configure or read a capture.
    #[error("libpcap on {interface}: {source}")]
    Pcap {
        /// The interface.
        interface: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// A sysctl file could not be read or written.
    #[error("sysctl {path}: {source}")]
    Sysctl {
        /// The /proc/sys path.
        path: &'static str,
        /// The underlying error (NotFound when nf_conntrack is not loaded).
        source: std::io::Error,
    },
    /// A sysctl file held something unexpected.
    #[error("sysctl {path}: unexpected value {value:?}")]
    SysctlValue {
        /// The /proc/sys path.
        path: &'static str,
        /// What it held.
        value: String,
    },
}
