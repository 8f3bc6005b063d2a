//! The gate against test upstreams on the loopback interface: manners of a
//! resolver (ids, EDNS sizes, truncation, TCP, failover, spoofed answers)
//! and every bound (in-flight table, rate, TCP clients, idle time, hold).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use geofence_classify::dns;
use geofence_dnsgate::{Gate, GateOptions, Gatekeeper, Hold, ReleaseAll, RunningGate, Withheld};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;

type Responder = Arc<dyn Fn(&[u8]) -> Vec<Vec<u8>> + Send + Sync>;

/// A test upstream on 127.0.0.1 (UDP and TCP on one port). Records the ids
/// it was asked with.
struct Upstream {
    addr: SocketAddr,
    ids: Arc<Mutex<Vec<u16>>>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn upstream(respond: Responder) -> Upstream {
    let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
    let addr = udp.local_addr().expect("addr");
    let tcp = TcpListener::bind(addr).await.expect("bind tcp");
    let ids = Arc::new(Mutex::new(Vec::new()));
    let (r1, i1) = (respond.clone(), ids.clone());
    let t1 = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let q = buf[..n].to_vec();
            i1.lock()
                .expect("lock")
                .push(u16::from_be_bytes([q[0], q[1]]));
            for r in r1(&q) {
                let _ = udp.send_to(&r, from).await;
            }
        }
    });
    let (r2, i2) = (respond, ids.clone());
    let t2 = tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let (r, i) = (r2.clone(), i2.clone());
            tokio::spawn(async move {
                let mut l = [0u8; 2];
                while s.read_exact(&mut l).await.is_ok() {
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(l))];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    i.lock()
                        .expect("lock")
                        .push(u16::from_be_bytes([q[0], q[1]]));
                    // Over TCP the full answer (no truncation).
                    for a in r(&q) {
                        let mut out = (a.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&a);
                        let _ = s.write_all(&out).await;
                    }
                }
            });
        }
    });
    Upstream {
        addr,
        ids,
        _tasks: vec![t1, t2],
    }
}

fn query(id: u16, name: &str, edns: Option<u16>) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    if let Some(sz) = edns {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&sz.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0x80, 0, 0, 0]);
    }
    m
}

/// An answer to `q` with `n` A records and an RRSIG-like record (type 46)
/// whose bytes must survive untouched.
fn answer(q: &[u8], n: usize) -> Vec<u8> {
    let qend = dns::first_question_span(q).expect("question").end;
    let mut a = q[..qend].to_vec();
    a[2] = 0x81;
    a[3] = 0xA0; // RA, AD
    a[6..12].copy_from_slice(&[0, (n + 1) as u8, 0, 0, 0, 0]);
    for i in 0..n {
        a.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, i as u8]);
    }
    a.extend_from_slice(&[
        0xC0, 12, 0, 46, 0, 1, 0, 0, 0, 60, 0, 8, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4,
    ]);
    a
}

fn opts(upstreams: Vec<SocketAddr>) -> GateOptions {
    GateOptions {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        upstreams,
        attempt_timeout: Duration::from_millis(300),
        attempts: 2,
        ..GateOptions::default()
    }
}

async fn ask_udp(gate: SocketAddr, q: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    s.send_to(q, gate).await.expect("send");
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(wait, s.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(buf[..n].to_vec())
}

async fn ask_tcp(gate: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(gate).await.ok()?;
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(q);
    s.write_all(&out).await.ok()?;
    let mut l = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut l))
        .await
        .ok()?
        .ok()?;
    let mut m = vec![0u8; usize::from(u16::from_be_bytes(l))];
    s.read_exact(&mut m).await.ok()?;
    Some(m)
}

async fn start(o: GateOptions, k: Arc<dyn Gatekeeper>) -> RunningGate {
    Gate::start(o, k).await.expect("gate starts")
}

const W: Duration = Duration::from_secs(3);

#[tokio::test]
async fn answers_pass_byte_for_byte_with_only_the_id_restored() {
    let up = upstream(Arc::new(|q: &[u8]| vec![answer(q, 3)])).await;
    let g = start(opts(vec![up.addr]), Arc::new(ReleaseAll)).await;
    let q = query(0x4242, "zoom.us", Some(1232));
    let got = ask_udp(g.udp[0], &q, W).await.expect("answer");
    let sent_id = up.ids.lock().expect("lock")[0];
    let mut expect = answer(&q, 3);
    // The upstream answered with the gate's id; the client sees its own.
    expect[..2].copy_from_slice(&0x4242u16.to_be_bytes());
    assert_eq!(got, expect);
    // A second query: upstream ids are fresh random values, not the client's.
    let _ = ask_udp(g.udp[0], &query(0x4242, "zoom.us", None), W).await;
    let ids = up.ids.lock().expect("lock").clone();
    assert_eq!(ids.len(), 2);
    assert!(
        !(ids[0] == 0x4242 && ids[1] == 0x4242),
        "upstream ids must not be the client's: {ids:?} (sent {sent_id})"
    );
    assert_eq!(g.stats.snapshot().answered, 2);
}

#[tokio::test]
async fn udp_size_truncation_then_tcp_fallback() {
    // 40 A records: 12 + 11 + 40*16 + 20 = 683 bytes.
    let up = upstream(Arc::new(|q: &[u8]| vec![answer(q, 40)])).await;
    let g = start(opts(vec![up.addr]), Arc::new(ReleaseAll)).await;
    // No EDNS: 512 bytes at most, so header + question with TC.
    let q = query(7, "big.example", None);
    let got = ask_udp(g.udp[0], &q, W).await.expect("answer");
    let m = dns::parse_message(&got).expect("parses");
    assert!(m.tc, "truncated");
    assert!(m.answers.is_empty());
    assert_eq!(m.id, 7);
    // EDNS 1232 fits it whole.
    let q2 = query(8, "big.example", Some(1232));
    let got = ask_udp(g.udp[0], &q2, W).await.expect("answer");
    assert!(!dns::parse_message(&got).expect("parses").tc);
    assert_eq!(&got[2..], &answer(&q2, 40)[2..]);
    // The client retries over TCP and gets everything.
    let got = ask_tcp(g.tcp[0], &q).await.expect("tcp answer");
    assert_eq!(&got[2..], &answer(&q, 40)[2..]);
    assert_eq!(dns::parse_message(&got).expect("parses").answers.len(), 41);
    assert_eq!(g.stats.snapshot().truncated, 1);
}

#[tokio::test]
async fn upstream_truncation_is_passed_on() {
    let up = upstream(Arc::new(|q: &[u8]| {
        let mut a = answer(q, 0);
        a[2] |= 0x02;
        vec![a]
    }))
    .await;
    let g = start(opts(vec![up.addr]), Arc::new(ReleaseAll)).await;
    let got = ask_udp(g.udp[0], &query(9, "tc.example", None), W)
        .await
        .expect("answer");
    assert!(dns::parse_message(&got).expect("parses").tc);
}

#[tokio::test]
async fn failover_to_the_next_upstream_and_servfail_when_all_fail() {
    // A socket that never answers.
    let dead = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    let up = upstream(Arc::new(|q: &[u8]| vec![answer(q, 1)])).await;
    let g = start(opts(vec![dead_addr, up.addr]), Arc::new(ReleaseAll)).await;
    let got = ask_udp(g.udp[0], &query(1, "a.example", None), W)
        .await
        .expect("answer");
    assert_eq!(dns::parse_message(&got).expect("parses").answers.len(), 2);
    assert_eq!(g.stats.snapshot().upstream_failures, 1);
    // The upstream that answered is now asked first: no second timeout.
    let t = std::time::Instant::now();
    let _ = ask_udp(g.udp[0], &query(2, "a.example", None), W)
        .await
        .expect("answer");
    assert!(
        g.stats.snapshot().upstream_failures == 1,
        "{:?}",
        t.elapsed()
    );

    let g2 = start(opts(vec![dead_addr]), Arc::new(ReleaseAll)).await;
    let got = ask_udp(g2.udp[0], &query(3, "a.example", None), W)
        .await
        .expect("servfail");
    let m = dns::parse_message(&got).expect("parses");
    assert_eq!((m.id, m.rcode), (3, 2));
    let s = g2.stats.snapshot();
    assert_eq!((s.upstream_failures, s.servfail), (2, 1));
}

#[tokio::test]
async fn spoofed_answers_are_ignored() {
    // The upstream first sends an answer with the wrong id and one for
    // another name, then the real one.
    let up = upstream(Arc::new(|q: &[u8]| {
        let mut wrong_id = answer(q, 1);
        wrong_id[0] ^= 0xFF;
        let other = answer(
            &query(u16::from_be_bytes([q[0], q[1]]), "evil.example", None),
            1,
        );
        vec![wrong_id, other, answer(q, 2)]
    }))
    .await;
    let g = start(opts(vec![up.addr]), Arc::new(ReleaseAll)).await;
    let got = ask_udp(g.udp[0], &query(5, "good.example", None), W)
        .await
        .expect("answer");
    let m = dns::parse_message(&got).expect("parses");
    assert!(m.question.expect("q").name.eq_str("good.example"));
    assert_eq!(m.answers.len(), 3);
    assert_eq!(g.stats.snapshot().mismatched_answers, 2);
}

/// Holds every answer until released; records what it was asked.
struct Held {
    go: Arc<Notify>,
    outcome: Result<(), Withheld>,
    seen: Mutex<Vec<(IpAddr, usize)>>,
}

impl Gatekeeper for Held {
    fn admit(&self, client: IpAddr, _: SocketAddr, answer: &[u8]) -> Hold {
        self.seen.lock().expect("lock").push((client, answer.len()));
        let (go, out) = (self.go.clone(), self.outcome.clone());
        Box::pin(async move {
            go.notified().await;
            out
        })
    }
}

#[tokio::test]
async fn answers_wait_for_the_gatekeeper() {
    let up = upstream(Arc::new(|q: &[u8]| vec![answer(q, 1)])).await;
    let keeper = Arc::new(Held {
        go: Arc::new(Notify::new()),
        outcome: Ok(()),
        seen: Mutex::new(Vec::new()),
    });
    let g = start(opts(vec![up.addr]), keeper.clone()).await;
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    s.send_to(&query(11, "held.example", None), g.udp[0])
        .await
        .expect("send");
    let mut buf = [0u8; 1500];
    let early = tokio::time::timeout(Duration::from_millis(300), s.recv(&mut buf)).await;
    assert!(
        early.is_err(),
        "nothing reaches the client before the gatekeeper releases"
    );
    assert_eq!(keeper.seen.lock().expect("lock").len(), 1);
    keeper.go.notify_one();
    let n = tokio::time::timeout(W, s.recv(&mut buf))
        .await
        .expect("released")
        .expect("recv");
    assert_eq!(
        dns::parse_message(&buf[..n]).expect("parses").answers.len(),
        2
    );
}

#[tokio::test]
async fn withheld_and_late_answers_become_servfail() {
    let up = upstream(Arc::new(|q: &[u8]| vec![answer(q, 1)])).await;
    let refused = Arc::new(Held {
        go: Arc::new(Notify::new()),
        outcome: Err(Withheld("kernel said no".into())),
        seen: Mutex::new(Vec::new()),
    });
    refused.go.notify_one(); // release at once, with an error
    let g = start(opts(vec![up.addr]), refused).await;
    let got = ask_udp(g.udp[0], &query(12, "x.example", None), W)
        .await
        .expect("answer");
    let m = dns::parse_message(&got).expect("parses");
    assert_eq!(m.rcode, 2);
    assert!(m.answers.is_empty(), "no address escapes");

    let never = Arc::new(Held {
        go: Arc::new(Notify::new()),
        outcome: Ok(()),
        seen: Mutex::new(Vec::new()),
    });
    let mut o = opts(vec![up.addr]);
    o.hold_timeout = Duration::from_millis(200);
    let g = start(o, never).await;
    let got = ask_udp(g.udp[0], &query(13, "x.example", None), W)
        .await
        .expect("answer");
    assert_eq!(dns::parse_message(&got).expect("parses").rcode, 2);
    assert_eq!(g.stats.snapshot().withheld, 1);
}

#[tokio::test]
async fn inflight_table_is_bounded() {
    let dead = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut o = opts(vec![dead.local_addr().expect("addr")]);
    o.max_inflight = 4;
    o.attempt_timeout = Duration::from_secs(20);
    o.attempts = 1;
    let g = start(o, Arc::new(ReleaseAll)).await;
    let mut socks = Vec::new();
    for i in 0..10u16 {
        let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        s.send_to(&query(i, "slow.example", None), g.udp[0])
            .await
            .expect("send");
        socks.push(s);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut refused = 0;
    for s in &socks {
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), s.recv(&mut buf)).await
        {
            assert_eq!(dns::parse_message(&buf[..n]).expect("parses").rcode, 5);
            refused += 1;
        }
    }
    assert_eq!(refused, 6, "4 in flight, 6 refused at once");
    assert_eq!(g.stats.snapshot().inflight_full, 6);
}

#[tokio::test]
async fn per_client_rate_limit() {
    let up = upstream(Arc::new(|q: &[u8]| vec![answer(q, 1)])).await;
    let mut o = opts(vec![up.addr]);
    o.client_rate = 1;
    o.client_burst = 3;
    let g = start(o, Arc::new(ReleaseAll)).await;
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for i in 0..10u16 {
        s.send_to(&query(i, "r.example", None), g.udp[0])
            .await
            .expect("send");
    }
    let mut got = 0;
    let mut buf = [0u8; 1500];
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), s.recv(&mut buf)).await {
        got += 1;
    }
    assert_eq!(got, 3, "the burst is answered, the rest dropped");
    assert_eq!(g.stats.snapshot().rate_limited, 7);
    // Over TCP the limit answers REFUSED rather than staying silent.
    let r = ask_tcp(g.tcp[0], &query(99, "r.example", None))
        .await
        .expect("refused");
    assert_eq!(dns::parse_message(&r).expect("parses").rcode, 5);
}

#[tokio::test]
async fn tcp_clients_are_bounded_and_idle_ones_closed() {
    let up = upstream(Arc::new(|q: &[u8]| vec![answer(q, 1)])).await;
    let mut o = opts(vec![up.addr]);
    o.max_tcp_clients = 2;
    o.tcp_idle = Duration::from_millis(300);
    let g = start(o, Arc::new(ReleaseAll)).await;
    let a = TcpStream::connect(g.tcp[0]).await.expect("a");
    let b = TcpStream::connect(g.tcp[0]).await.expect("b");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = TcpStream::connect(g.tcp[0]).await.expect("c connects");
    let mut buf = [0u8; 4];
    let n = tokio::time::timeout(W, c.read(&mut buf))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "the third client is closed at once");
    assert_eq!(g.stats.snapshot().tcp_refused, 1);
    // Idle clients are closed after tcp_idle, freeing their slots.
    let mut a = a;
    let n = tokio::time::timeout(W, a.read(&mut buf))
        .await
        .expect("idle close")
        .unwrap_or(0);
    assert_eq!(n, 0);
    drop(b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = ask_tcp(g.tcp[0], &query(1, "t.example", None))
        .await
        .expect("answer");
    assert_eq!(dns::parse_message(&r).expect("parses").answers.len(), 2);
}

#[tokio::test]
async fn malformed_and_unsupported_queries() {
    let up = upstream(Arc::new(|q: &[u8]| vec![answer(q, 1)])).await;
    let g = start(opts(vec![up.addr]), Arc::new(ReleaseAll)).await;
    // Too short: no answer at all.
    assert!(ask_udp(g.udp[0], &[1, 2, 3], Duration::from_millis(300))
        .await
        .is_none());
    // NOTIFY (opcode 4): NOTIMP.
    let mut n = query(3, "z.example", None);
    n[2] = 0x20;
    let got = ask_udp(g.udp[0], &n, W).await.expect("notimp");
    assert_eq!(dns::parse_message(&got).expect("parses").rcode, 4);
    // A forward compression pointer: FORMERR, nothing forwarded.
    let mut bad = query(4, "z.example", None);
    bad.truncate(12);
    bad.extend_from_slice(&[0xC0, 20, 0, 1, 0, 1]);
    let got = ask_udp(g.udp[0], &bad, W).await.expect("formerr");
    assert_eq!(got[3] & 0x0F, 1);
    assert!(up.ids.lock().expect("lock").is_empty());
    assert_eq!(g.stats.snapshot().bad_queries, 3);
}
