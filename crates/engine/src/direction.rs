//! Which side of a flow without a seen handshake is the local client.
//!
//! [`flow::initiator`](crate::flow::initiator) takes the sender of the first
//! seen packet as the client, unless a TCP handshake or a well-known source
//! port says otherwise. Media is often seen first from the far side: the
//! remote peer of a call opens a flow to the client's socket, a capture
//! starts in the middle of a call, a relay answers a request that was not
//! captured. [`reorient`] turns such a UDP/TCP flow around when, in order:
//!
//! 1. the receiving socket already carried an identified call flow as its
//!    client (what the same client socket showed) and the sender's did not;
//! 2. the first payload is a standard STUN success or error response (the
//!    responder is the server of that exchange);
//! 3. the sender is a public address and the receiver a private, CGNAT or
//!    unique-local one on an unprivileged port (the local client behind the
//!    gateway);
//! 4. the sender uses a STUN/TURN port (3478, 3479, 5349) or an app's
//!    narrow vendor port and the receiver does not.
//!
//! Only a flow whose receiver is not a public address is turned: the
//! outside party always stays the server, so no choice of first packet or
//! source port lets a LAN client's flow to a foreign server be judged by
//! the client's own address instead (the policy checks the server's).
//!
//! A turned flow is marked `remote_opened`: it may be labelled from its
//! payload and from what its client socket already showed, but it never
//! teaches the socket, peer or server caches anything, so a stranger who
//! sends vendor-looking packets to a client cannot label that client's
//! other flows.

use std::net::{IpAddr, SocketAddr};

use geofence_classify::{stun, SignatureDb};
use geofence_decode::{Packet, Proto};
use geofence_geo::AddressScope;

use crate::inspect;

/// STUN/TURN server ports (RFC 8489, RFC 8656): a sender on one of them is
/// a server.
const STUN_PORTS: [u16; 3] = [3478, 3479, 5349];

/// Ports below this are services, not client sockets.
const UNPRIVILEGED: u16 = 1024;

type End = (IpAddr, u16);

/// `(client, server, remote_opened)` for a non-DNS flow whose first packet
/// is `p` and which [`crate::flow::initiator`] oriented as `client ->
/// server`. `known_socket` says whether a socket already carried an
/// identified flow as its client.
pub(crate) fn reorient(
    p: &Packet<'_>,
    client: End,
    server: End,
    sigs: &SignatureDb,
    known_socket: impl Fn(SocketAddr) -> bool,
) -> (End, End, bool) {
    // Only the "sender is the client" guess is revisited; a handshake or a
    // well-known source port already decided otherwise.
    let sender = (p.src, p.sport);
    let receiver = (p.dst, p.dport);
    if client != sender
        || server != receiver
        || receiver.1 < UNPRIVILEGED
        || crate::is_dns_port(sender.1)
    {
        return (client, server, false);
    }
    if p.tcp.is_some_and(|t| t.syn) {
        return (client, server, false);
    }
    // Never make a public receiver the client. The policy judges the
    // server's address, so turning a LAN client's flow to a foreign server
    // round would let the client escape its jurisdiction check by choosing
    // what it sends first (a STUN response, a vendor or TURN source port)
    // or by having the far end send first. Only a flow whose receiver is
    // local (private, CGNAT, unique-local) is turned, which keeps the
    // outside party the server.
    if AddressScope::of(receiver.0).is_public() {
        return (client, server, false);
    }
    let turn = |why: bool| {
        if why {
            Some((receiver, sender, true))
        } else {
            None
        }
    };
    let known = |e: End| known_socket(SocketAddr::new(e.0, e.1));
    turn(known(receiver) && !known(sender))
        .or_else(|| turn(p.proto == Proto::Udp && is_stun_response(p.payload)))
        .or_else(|| {
            turn(
                AddressScope::of(sender.0).is_public()
                    && AddressScope::of(receiver.0) == AddressScope::Private,
            )
        })
        .or_else(|| {
            let t = inspect::transport(p.proto);
            let server_port = |port: u16| {
                (p.proto == Proto::Udp && STUN_PORTS.contains(&port))
                    || sigs.match_port(t, port).is_some()
            };
            turn(server_port(sender.1) && !server_port(receiver.1))
        })
        .unwrap_or((client, server, false))
}

/// A standard STUN success or error response (magic cookie, RFC 5389
/// method and class bits; WhatsApp's 0x08xx types are not standard).
fn is_stun_response(payload: &[u8]) -> bool {
    let cookie = payload.get(4..8) == Some(&0x2112_A442u32.to_be_bytes()[..]);
    cookie && stun::parse(payload, false).is_some_and(|m| m.msg_type < 0x0800 && m.is_response())
}
