//! Cutting established flows: deletes conntrack entries through ctnetlink.
//!
//! A new set element drops the next packet of a live flow, but the
//! conntrack entry (and NAT/offload state) would linger; deleting it makes
//! the cut immediate and frees the state. Implemented as a filtered dump
//! (`IPCTNL_MSG_CT_GET`) followed by one `IPCTNL_MSG_CT_DELETE` per match
//! with the entry's original tuple copied verbatim. Messages are built and
//! parsed in safe Rust on an `mnl` socket.

use crate::apply::{messages, NftError};
use std::net::IpAddr;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_IP: u16 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const ACCT: &str = "/proc/sys/net/netfilter/nf_conntrack_acct";

/// Makes sure `net.netfilter.nf_conntrack_acct=1` in the current network
/// namespace: without it `ct original packets` reads 0 and the NFLOG rule
/// logs every packet (platform notes §3). Returns `true` if it had to be
/// switched on. Applies to conntrack entries created afterwards.
pub fn ensure_conntrack_acct() -> Result<bool, NftError> {
    let cur = std::fs::read_to_string(ACCT).map_err(|e| {
        NftError::Conntrack(format!(
            "{ACCT}: {e} (is nf_conntrack loaded? apply the ruleset first)"
        ))
    })?;
    if cur.trim() == "1" {
        return Ok(false);
    }
    std::fs::write(ACCT, "1").map_err(|e| NftError::Conntrack(format!("{ACCT}: {e}")))?;
    Ok(true)
}

fn header(ty: u16, flags: u16, seq: u32, family: u8, payload: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + payload.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, 0, 0, 0]);
    m.extend_from_slice(payload);
    m
}

/// Netlink attributes of a buffer: (type without flags, payload, whole attribute).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8], &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len], &b[..len]));
        let adv = ((len + 3) & !3).min(b.len());
        b = &b[adv..];
    }
    out
}

fn matches(t: Option<(IpAddr, IpAddr)>, src: Option<IpAddr>, dst: IpAddr) -> bool {
    match t {
        Some((s, d)) => d == dst && src.is_none_or(|x| x == s),
        None => false,
    }
}

/// (src, dst) of a CTA_TUPLE_ORIG payload.
fn tuple_addrs(tuple: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let ip = attrs(tuple).into_iter().find(|a| a.0 == CTA_TUPLE_IP)?.1;
    let mut src = None;
    let mut dst = None;
    for (ty, v, _) in attrs(ip) {
        let a = match v.len() {
            4 => <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
            _ => None,
        };
        match ty {
            1 | 3 => src = a,
            2 | 4 => dst = a,
            _ => {}
        }
    }
    Some((src?, dst?))
}

/// Deletes every conntrack entry whose original direction is `src -> dst`
/// (any protocol and ports) in the current network namespace. Returns how
/// many entries were deleted.
pub fn kill_conntrack(src: IpAddr, dst: IpAddr) -> Result<usize, NftError> {
    kill_matching(Some(src), dst)
}

/// Deletes every conntrack entry whose original destination is `dst`, from
/// any client (for detections that apply to every client).
pub fn kill_conntrack_to(dst: IpAddr) -> Result<usize, NftError> {
    kill_matching(None, dst)
}

fn kill_matching(src: Option<IpAddr>, dst: IpAddr) -> Result<usize, NftError> {
    let err = |what: &str, e: std::io::Error| NftError::Conntrack(format!("{what}: {e}"));
    let family = match dst {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    };
    let sock = mnl::Socket::new(mnl::Bus::Netfilter).map_err(|e| err("socket", e))?;
    let ty_get = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    let seq = 1;
    sock.send(&header(ty_get, flags, seq, family, &[]))
        .map_err(|e| err("dump request", e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut tuples: Vec<Vec<u8>> = Vec::new();
    'dump: loop {
        let n = sock.recv_raw(&mut buf).map_err(|e| err("dump", e))?;
        for (ty, mseq, m) in messages(buf.get(..n).unwrap_or_default()) {
            if mseq != seq {
                continue;
            }
            match ty {
                NLMSG_DONE => break 'dump,
                NLMSG_ERROR => {
                    let e = m
                        .get(16..20)
                        .and_then(|b| b.try_into().ok())
                        .map(i32::from_ne_bytes)
                        .unwrap_or(0);
                    if e == 0 {
                        break 'dump;
                    }
                    return Err(err("dump", std::io::Error::from_raw_os_error(-e)));
                }
                _ => {
                    let body = m.get(20..).unwrap_or_default();
                    for (aty, payload, whole) in attrs(body) {
                        if aty == CTA_TUPLE_ORIG && matches(tuple_addrs(payload), src, dst) {
                            tuples.push(whole.to_vec());
                        }
                    }
                }
            }
        }
    }
    let ty_del = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
    let mut deleted = 0usize;
    for (i, t) in tuples.iter().enumerate() {
        let seq = 2 + i as u32;
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        sock.send(&header(ty_del, flags, seq, family, t))
            .map_err(|e| err("delete", e))?;
        let n = sock.recv_raw(&mut buf).map_err(|e| err("delete ack", e))?;
        for (ty, mseq, m) in messages(buf.get(..n).unwrap_or_default()) {
            if ty == NLMSG_ERROR && mseq == seq {
                let e = m
                    .get(16..20)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .unwrap_or(0);
                match -e {
                    0 => deleted += 1,
                    libc::ENOENT => {} // expired meanwhile
                    other => return Err(err("delete", std::io::Error::from_raw_os_error(other))),
                }
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn tuple_parsing() {
        let ip = [nla(1, &[198, 51, 100, 2]), nla(2, &[203, 0, 113, 10])].concat();
        let tuple = [
            nla(CTA_TUPLE_IP | 0x8000, &ip),
            nla(2 | 0x8000, &nla(1, &[6])),
        ]
        .concat();
        let got = tuple_addrs(&tuple);
        assert_eq!(
            got,
            Some((
                "198.51.100.2".parse().expect("ip"),
                "203.0.113.10".parse().expect("ip")
            ))
        );
        let (c, s) = got.expect("tuple");
        assert!(matches(got, Some(c), s));
        assert!(matches(got, None, s));
        assert!(!matches(got, Some(s), s));
        assert!(!matches(got, None, c));
        // Truncated attributes never panic and yield nothing.
        assert_eq!(tuple_addrs(&tuple[..5]), None);
        assert!(attrs(&[0xff, 0xff, 1, 0]).is_empty());
    }
}
