//! `net.netfilter.nf_conntrack_acct`: per network namespace, needed by `ct packets`.

use crate::CaptureError;

/// The sysctl file; it reflects the network namespace of the reading process.
pub const CONNTRACK_ACCT_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_acct";

/// Whether conntrack accounting is on in this network namespace. `Err` with
/// `NotFound` inside when nf_conntrack is not loaded yet (an nft rule using `ct`
/// loads it).
pub fn sysctl_conntrack_acct() -> Result<bool, CaptureError> {
    let path = CONNTRACK_ACCT_PATH;
    let s =
        std::fs::read_to_string(path).map_err(|source| CaptureError::Sysctl { path, source })?;
    match s.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(CaptureError::SysctlValue {
            path,
            value: other.to_string(),
        }),
    }
}

/// Turns conntrack accounting on in this network namespace (needs CAP_NET_ADMIN).
/// Only connections created afterwards are counted.
pub fn enable_conntrack_acct() -> Result<(), CaptureError> {
    let path = CONNTRACK_ACCT_PATH;
    std::fs::write(path, b"1\n").map_err(|source| CaptureError::Sysctl { path, source })?;
    if sysctl_conntrack_acct()? {
        Ok(())
    } else {
        Err(CaptureError::SysctlValue {
            path,
            value: "0 after writing 1".into(),
        })
    }
}
