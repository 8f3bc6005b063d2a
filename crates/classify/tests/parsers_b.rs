//! STUN and vendor payload parsers against the real capture corpus, random
//! payloads, truncations and mutations.
//!
//! Run with `--nocapture` to see the per-file observation table.

use geofence_classify::payload::{self, Packet, MATCHERS};
use geofence_classify::sigs::Transport;
use geofence_classify::stun::{self, Framing};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

// ------------------------------------------------------------ test-only pcap

/// One decoded transport packet.
#[derive(Debug, Clone)]
struct Pkt {
    tcp: bool,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    payload: Vec<u8>,
}

fn u16le(b: &[u8], at: usize, be: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if be {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}
fn u32le(b: &[u8], at: usize, be: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if be {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}
fn be16(b: &[u8], at: usize) -> Option<u16> {
    u16le(b, at, true)
}

/// (linktype, frame) for every frame of a classic pcap or pcapng file.
fn frames(d: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let magic = d.get(..4).unwrap_or(&[]);
    if magic == [0xd4, 0xc3, 0xb2, 0xa1]
        || magic == [0x4d, 0x3c, 0xb2, 0xa1]
        || magic == [0xa1, 0xb2, 0xc3, 0xd4]
        || magic == [0xa1, 0xb2, 0x3c, 0x4d]
    {
        let be = magic[0] == 0xa1;
        let lt = u32le(d, 20, be).unwrap_or(0) as u16;
        let mut o = 24;
        while let Some(cl) = u32le(d, o + 8, be) {
            let cl = cl as usize;
            let Some(f) = d.get(o + 16..o + 16 + cl) else {
                break;
            };
            out.push((lt, f));
            o += 16 + cl;
        }
    } else if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let be = d.get(8..12) == Some(&[0x1a, 0x2b, 0x3c, 0x4d][..]);
        let mut lts = Vec::new();
        let mut o = 0;
        while let (Some(bt), Some(bl)) = (u32le(d, o, be), u32le(d, o + 4, be)) {
            let bl = bl as usize;
            if bl < 12 {
                break;
            }
            let Some(b) = d.get(o..o + bl) else { break };
            match bt {
                1 => lts.push(u16le(b, 8, be).unwrap_or(0)),
                6 => {
                    let iid = u32le(b, 8, be).unwrap_or(0) as usize;
                    let cl = u32le(b, 20, be).unwrap_or(0) as usize;
                    if let (Some(&lt), Some(f)) = (lts.get(iid), b.get(28..28 + cl)) {
                        out.push((lt, f));
                    }
                }
                3 => {
                    let ol = u32le(b, 8, be).unwrap_or(0) as usize;
                    if let (Some(&lt), Some(f)) = (lts.first(), b.get(12..12 + ol.min(bl - 16))) {
                        out.push((lt, f));
                    }
                }
                _ => {}
            }
            o += bl;
        }
    }
    out
}

/// Ethernet (VLAN) / raw IP -> IPv4/IPv6 (unfragmented) -> UDP/TCP.
fn decode(lt: u16, f: &[u8]) -> Option<Pkt> {
    let ip = match lt {
        1 => {
            let mut et = be16(f, 12)?;
            let mut off = 14;
            while et == 0x8100 || et == 0x88a8 {
                et = be16(f, off + 2)?;
                off += 4;
            }
            if et != 0x0800 && et != 0x86dd {
                return None;
            }
            f.get(off..)?
        }
        101 | 228 | 229 => f,
        _ => return None,
    };
    let (proto, src, dst, l4) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip[0] & 15) * 4;
            let tot = usize::from(be16(ip, 2)?);
            if be16(ip, 6)? & 0x3fff != 0 {
                return None; // fragment
            }
            let s: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (
                *ip.get(9)?,
                IpAddr::from(s),
                IpAddr::from(d),
                ip.get(ihl..tot.min(ip.len()))?,
            )
        }
        6 => {
            let plen = usize::from(be16(ip, 4)?);
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let mut nh = *ip.get(6)?;
            let mut rest = ip.get(40..(40 + plen).min(ip.len()))?;
            while matches!(nh, 0 | 43 | 60) {
                let l = (usize::from(*rest.get(1)?) + 1) * 8;
                nh = *rest.first()?;
                rest = rest.get(l..)?;
            }
            (nh, IpAddr::from(s), IpAddr::from(d), rest)
        }
        _ => return None,
    };
    let sp = be16(l4, 0)?;
    let dp = be16(l4, 2)?;
    let (tcp, pl) = match proto {
        17 => (false, l4.get(8..)?),
        6 => (true, l4.get(usize::from(l4.get(12)? >> 4) * 4..)?),
        _ => return None,
    };
    Some(Pkt {
        tcp,
        src: (src, sp),
        dst: (dst, dp),
        payload: pl.to_vec(),
    })
}

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    if p.join("corpus/pcap").is_dir() {
        Some(p)
    } else {
        println!("skip: shared corpus not found at {}", p.display());
        None
    }
}

fn read_pcap(name: &str) -> Option<Vec<Pkt>> {
    let p = shared()?.join("corpus/pcap").join(name);
    let d = std::fs::read(&p).expect("read pcap");
    Some(
        frames(&d)
            .into_iter()
            .filter_map(|(lt, f)| decode(lt, f))
            .collect(),
    )
}

fn ep(a: &(IpAddr, u16)) -> String {
    match a.0 {
        IpAddr::V4(v) => format!("{v}:{}", a.1),
        IpAddr::V6(v) => format!("[{v}]:{}", a.1),
    }
}

/// Flow key (order-independent) -> (label app or class, packets with
/// from_initiator and index).
struct Flow {
    label: String,
    pkts: Vec<(Pkt, bool, u32)>,
}

fn labels() -> HashMap<(String, String, String), (String, String)> {
    let mut m = HashMap::new();
    let Some(s) = shared() else { return m };
    let text = std::fs::read_to_string(s.join("corpus/labels.csv")).expect("labels");
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        if c.len() < 9 {
            continue;
        }
        let name = if c[8].is_empty() {
            format!("({})", c[5])
        } else {
            c[8].to_string()
        };
        m.insert(
            (c[0].to_string(), c[3].to_string(), c[4].to_string()),
            (name, c[6].to_string()),
        );
    }
    m
}

fn flows(file: &str) -> Option<Vec<Flow>> {
    let pk = read_pcap(file)?;
    let lab = labels();
    let mut order: Vec<(String, String, bool)> = Vec::new();
    let mut map: HashMap<(String, String, bool), Flow> = HashMap::new();
    for p in pk {
        let (a, b) = (ep(&p.src), ep(&p.dst));
        let k1 = (a.clone(), b.clone(), p.tcp);
        let k2 = (b.clone(), a.clone(), p.tcp);
        let key = if map.contains_key(&k2) { k2 } else { k1 };
        let f = map.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            let l = lab
                .get(&(file.to_string(), a.clone(), b.clone()))
                .or_else(|| lab.get(&(file.to_string(), b.clone(), a.clone())))
                .map(|x| x.0.clone())
                .unwrap_or_else(|| "-".into());
            Flow {
                label: l,
                pkts: Vec::new(),
            }
        });
        let from_init = key.0 == a;
        let idx = f.pkts.len() as u32;
        f.pkts.push((p, from_init, idx));
    }
    Some(order.into_iter().filter_map(|k| map.remove(&k)).collect())
}

fn packet<'a>(p: &'a Pkt, from_init: bool, index: u32) -> Packet<'a> {
    Packet {
        transport: if p.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        },
        payload: &p.payload,
        src_port: p.src.1,
        dst_port: p.dst.1,
        from_initiator: from_init,
        index,
    }
}

fn matches_in(file: &str, name: &str) -> Option<Vec<(String, String, Option<String>)>> {
    let f = payload::matcher(name).expect("matcher");
    let mut out = Vec::new();
    for fl in flows(file)? {
        for (p, fi, i) in &fl.pkts {
            if let Some(m) = f(&packet(p, *fi, *i)) {
                out.push((
                    fl.label.clone(),
                    m.what.to_string(),
                    m.host.map(str::to_string),
                ));
            }
        }
    }
    Some(out)
}

// ------------------------------------------------------------ STUN summaries

#[derive(Default, Debug)]
struct StunObs {
    msgs: usize,
    types: BTreeSet<u16>,
    attrs: BTreeSet<u16>,
    realms: BTreeSet<String>,
    software: BTreeSet<String>,
    peers: usize,
    mapped: usize,
    data_inner: usize,
    classic: usize,
    framing: BTreeSet<String>,
    tcp: usize,
    flows: usize,
    server_ports: BTreeSet<u16>,
    /// Other packets of the same flows by RFC 7983 first-byte class
    /// ("TurnChannel" only when the ChannelData length checks out).
    demux: BTreeMap<String, usize>,
}

fn stun_obs(file: &str) -> Option<BTreeMap<String, StunObs>> {
    let mut by_app: BTreeMap<String, StunObs> = BTreeMap::new();
    for fl in flows(file)? {
        let mut counted = false;
        let is_stun_flow = fl
            .pkts
            .iter()
            .any(|(p, _, _)| stun::parse(&p.payload, p.tcp).is_some());
        for (p, fi, _) in &fl.pkts {
            let Some(m) = stun::parse(&p.payload, p.tcp) else {
                if is_stun_flow && !p.payload.is_empty() {
                    let d = stun::demux(p.payload[0]);
                    let k = match d {
                        stun::Demux::TurnChannel if !stun::is_turn_channel_data(&p.payload) => {
                            "TurnChannel?".to_string()
                        }
                        stun::Demux::RtpRtcp if payload::is_rtcp(&p.payload) => "Rtcp".to_string(),
                        stun::Demux::RtpRtcp if payload::rtp_header(&p.payload).is_some() => {
                            "Rtp".to_string()
                        }
                        other => format!("{other:?}"),
                    };
                    *by_app
                        .entry(fl.label.clone())
                        .or_default()
                        .demux
                        .entry(k)
                        .or_default() += 1;
                }
                continue;
            };
            let o = by_app.entry(fl.label.clone()).or_default();
            if !counted {
                o.flows += 1;
                counted = true;
            }
            o.server_ports.insert(if *fi { p.dst.1 } else { p.src.1 });
            o.msgs += 1;
            o.tcp += usize::from(p.tcp);
            o.types.insert(m.msg_type);
            o.attrs.extend(m.attributes().map(|(t, _)| t));
            if let Some(r) = m.realm() {
                o.realms.insert(r.to_string());
            }
            if let Some(s) = m.software() {
                o.software.insert(s.to_string());
            }
            o.peers += m.xor_peer_addresses().count();
            o.mapped += usize::from(m.xor_mapped_address().is_some());
            if let Some(d) = m.data() {
                if stun::parse(d, false).is_some() {
                    o.data_inner += 1;
                }
            }
            o.classic += usize::from(!m.has_cookie);
            o.framing.insert(format!("{:?}", m.framing));
        }
    }
    Some(by_app)
}

const STUN_FILES: &[&str] = &[
    "stun.pcap",
    "stun_zoom.pcapng",
    "zoom.pcap",
    "teams.pcap",
    "stun_wa_call.pcapng",
    "whatsapp_login_call.pcap",
    "stun_signal.pcapng",
    "stun_google_meet.pcapng",
    "google_meet.pcapng",
    "telegram_videocall.pcapng",
];

#[test]
fn corpus_stun_observation_table() {
    if shared().is_none() {
        return;
    }
    for file in STUN_FILES {
        let obs = stun_obs(file).expect("file");
        for (app, o) in &obs {
            let hex = |s: &BTreeSet<u16>| {
                s.iter()
                    .map(|t| format!("{t:04x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "STUN {file} app={app} flows={} server_ports={:?} msgs={} tcp={} classic={} framing={:?} types=[{}] attrs=[{}] realms={:?} software={:?} xor_peer={} xor_mapped={} data_stun={} other_pkts={:?}",
                o.flows, o.server_ports, o.msgs, o.tcp, o.classic, o.framing, hex(&o.types), hex(&o.attrs), o.realms, o.software, o.peers, o.mapped, o.data_inner, o.demux
            );
        }
    }
}

fn obs_for<'a>(obs: &'a BTreeMap<String, StunObs>, app: &str) -> &'a StunObs {
    obs.get(app).unwrap_or_else(|| {
        panic!(
            "no STUN seen for {app}: {:?}",
            obs.keys().collect::<Vec<_>>()
        )
    })
}

/// Every payload that carries the magic cookie where a STUN header would
/// have it (offset 4; 6 with RFC 4571 framing; 16 behind FF 10) parses.
#[test]
fn corpus_cookie_payloads_all_parse() {
    let Some(s) = shared() else { return };
    let mut files: Vec<String> = std::fs::read_dir(s.join("corpus/pcap"))
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    let cookie = stun::MAGIC_COOKIE.to_be_bytes();
    let (mut with_cookie, mut missed) = (0usize, Vec::new());
    for file in &files {
        for fl in flows(file).expect("flows") {
            for (p, _, _) in &fl.pkts {
                let b = &p.payload;
                let at4 = b.get(4..8) == Some(&cookie[..]) && b.first().is_some_and(|&c| c < 4);
                let at6 = p.tcp && b.get(6..10) == Some(&cookie[..]);
                let at16 = b.get(16..20) == Some(&cookie[..]) && b.starts_with(&[0xFF, 0x10]);
                if at4 || at6 || at16 {
                    with_cookie += 1;
                    if stun::parse(b, p.tcp).is_none() {
                        missed.push(format!(
                            "{file} {} {} {:02x?}",
                            fl.label,
                            b.len(),
                            &b[..b.len().min(24)]
                        ));
                    }
                }
            }
        }
    }
    println!(
        "cookie-bearing payloads: {with_cookie}, not parsed: {}",
        missed.len()
    );
    for m in missed.iter().take(20) {
        println!("  missed {m}");
    }
    assert!(with_cookie > 900);
    assert!(missed.is_empty());
}

#[test]
fn corpus_stun_reference_facts() {
    if shared().is_none() {
        return;
    }
    // Teams: the Microsoft attributes (reference §3.1).
    let o = stun_obs("teams.pcap").expect("teams");
    let t = obs_for(&o, "teams");
    let ms = [
        0x8054u16, 0x8055, 0x8070, 0x8095, 0x8006, 0x8036, 0x24DF, 0x3802, 0x0800,
    ];
    assert!(
        ms.iter().any(|a| t.attrs.contains(a)),
        "teams attrs {:x?}",
        t.attrs
    );
    // Teams sends Microsoft multiplexed TURN (FF 10) on UDP; over TCP the
    // Teams flow in stun.pcap uses RFC 4571 framing.
    assert!(
        t.framing.contains(&format!("{:?}", Framing::MsMultiplexed)),
        "{:?}",
        t.framing
    );
    let o = stun_obs("stun.pcap").expect("stun");
    let t = obs_for(&o, "teams");
    assert!(t.framing.contains(&format!("{:?}", Framing::Rfc4571)) && t.tcp > 0);
    assert!(
        ms.iter().any(|a| t.attrs.contains(a)),
        "stun.pcap teams attrs {:x?}",
        t.attrs
    );
    // WhatsApp: message types 0x0800-0x0805 or attributes 0x4000-0x4007.
    for f in ["stun_wa_call.pcapng", "whatsapp_login_call.pcap"] {
        let o = stun_obs(f).expect("wa");
        let w = obs_for(&o, "whatsapp");
        let wa_type = w.types.iter().any(|t| (0x0800..=0x0805).contains(t));
        let wa_attr = w.attrs.iter().any(|a| (0x4000..=0x4007).contains(a));
        assert!(wa_type || wa_attr, "{f}: {:x?} {:x?}", w.types, w.attrs);
    }
    // Signal: REALM signal.org (or whispersystems.org).
    let o = stun_obs("stun_signal.pcapng").expect("signal");
    let s = obs_for(&o, "signal");
    assert!(
        s.realms
            .iter()
            .any(|r| r.contains("signal.org") || r.contains("whispersystems.org")),
        "{:?}",
        s.realms
    );
    // Telegram: REALM telegram.org on the relays.
    let o = stun_obs("telegram_videocall.pcapng").expect("tg");
    let tg = obs_for(&o, "telegram");
    assert!(
        tg.realms.iter().any(|r| r.contains("telegram")),
        "{:?}",
        tg.realms
    );
    // Google: attribute 0xFF03 or REALM google.com. Seen in stun.pcap
    // (REALM turn.l.google.com); stun_google_meet.pcapng carries neither
    // (nDPI names it by the Meet address ranges and ports), see the report.
    let o = stun_obs("stun.pcap").expect("stun");
    let g = obs_for(&o, "meet");
    assert!(
        g.attrs.contains(&0xFF03) || g.realms.iter().any(|r| r.contains("google.com")),
        "{:x?} {:?}",
        g.attrs,
        g.realms
    );
    // Zoom STUN servers: attribute 0x0101 or 0x0103.
    let o = stun_obs("zoom.pcap").expect("zoom");
    let z = obs_for(&o, "zoom");
    assert!(
        z.attrs.contains(&0x0101) || z.attrs.contains(&0x0103),
        "{:x?}",
        z.attrs
    );
}

#[test]
fn corpus_non_stun_flows_do_not_parse_as_stun() {
    if shared().is_none() {
        return;
    }
    // Packets that are DNS, TLS, QUIC, HTTP, mDNS, SSDP ... must never parse.
    let mut checked = 0usize;
    for file in [
        "webex.pcap",
        "wechat.pcap",
        "anyconnect-vpn.pcap",
        "telegram.pcap",
        "zoom2.pcap",
        "discord.pcap",
        "agora-sd-rtn.pcap",
        "dingtalk.pcap",
        "line.pcap",
        "rtp.pcapng",
        "sip.pcap",
        "dtls.pcap",
    ] {
        for fl in flows(file).expect("file") {
            for (p, _, _) in &fl.pkts {
                if p.payload.is_empty() {
                    continue;
                }
                checked += 1;
                assert!(
                    stun::parse(&p.payload, p.tcp).is_none(),
                    "{file} {} -> {} {:02x?}",
                    ep(&p.src),
                    ep(&p.dst),
                    &p.payload[..p.payload.len().min(24)]
                );
            }
        }
    }
    println!("non-STUN packets checked: {checked}");
    assert!(checked > 2000);
}

// ------------------------------------------------------------ payload corpus

#[test]
fn corpus_zoom_sfu() {
    for file in ["zoom.pcap", "zoom2.pcap"] {
        let Some(fls) = flows(file) else { return };
        let mut media_flows = 0;
        for fl in fls {
            let Some((p0, _, _)) = fl.pkts.first() else {
                continue;
            };
            if p0.tcp || !(p0.src.1 == 8801 || p0.dst.1 == 8801) {
                continue;
            }
            media_flows += 1;
            let mut kinds = BTreeMap::new();
            for (p, fi, i) in &fl.pkts {
                if let Some(m) = payload::zoom_sfu(&packet(p, *fi, *i)) {
                    *kinds.entry(m.what).or_insert(0) += 1;
                }
            }
            println!(
                "zoom-sfu {file} {} {} pkts={} {:?}",
                fl.label,
                ep(&p0.src),
                fl.pkts.len(),
                kinds
            );
            assert_eq!(fl.label, "zoom");
            // The first packet of every Zoom SFU flow is the client hello.
            assert!(payload::zoom_sfu(&packet(p0, true, 0)).is_some_and(|m| m.what == "sfu-hello"));
        }
        assert!(media_flows >= 3, "{file}: {media_flows}");
    }
}

#[test]
fn corpus_discord() {
    let Some(disc) = matches_in("discord.pcap", "discord-ip-discovery") else {
        return;
    };
    let req = disc
        .iter()
        .filter(|m| m.1 == "ip-discovery-request")
        .count();
    let resp = disc
        .iter()
        .filter(|m| m.1 == "ip-discovery-response")
        .count();
    println!("discord.pcap ip-discovery req={req} resp={resp}");
    assert!(req >= 2 && resp >= 2);
    assert!(disc.iter().all(|m| m.0 == "discord"));
    let ka = matches_in("discord.pcap", "discord-keepalive").expect("ka");
    println!("discord.pcap keepalive={}", ka.len());
    assert!(ka.len() >= 10 && ka.iter().all(|m| m.0 == "discord"));
    let rtp = matches_in("rtp.pcapng", "discord-ip-discovery").expect("rtp");
    assert!(
        !rtp.is_empty() && rtp.iter().all(|m| m.0 == "discord"),
        "{rtp:?}"
    );
}

#[test]
fn corpus_agora_names_match_labels() {
    let Some(fls) = flows("agora-sd-rtn.pcap") else {
        return;
    };
    let lab = labels();
    let mut named = 0;
    for fl in &fls {
        for (p, fi, i) in &fl.pkts {
            let Some(m) = payload::agora_sdrtn(&packet(p, *fi, *i)) else {
                continue;
            };
            let host = m.host.expect("host");
            assert_eq!(m.what, "sni-agora");
            assert!(host.ends_with(".edge.agora.io"), "{host}");
            // The name equals nDPI's recorded name for this flow.
            let want = lab
                .get(&("agora-sd-rtn.pcap".into(), ep(&p.src), ep(&p.dst)))
                .or_else(|| lab.get(&("agora-sd-rtn.pcap".into(), ep(&p.dst), ep(&p.src))))
                .map(|x| x.1.clone());
            assert_eq!(want.as_deref(), Some(host));
            named += 1;
        }
    }
    println!("agora named packets={named} flows={}", fls.len());
    assert!(named >= 26);
}

#[test]
fn corpus_dingtalk_whatsapp_telegram() {
    let Some(d) = matches_in("dingtalk.pcap", "dingtalk") else {
        return;
    };
    println!("dingtalk.pcap dingtalk={d:?}");
    assert!(!d.is_empty() && d.iter().all(|m| m.0 == "dingtalk"));
    for f in ["whatsapp_login_chat.pcap", "whatsapp_login_call.pcap"] {
        let w = matches_in(f, "whatsapp-noise").expect("wa");
        println!("{f} whatsapp-noise={w:?}");
        assert!(!w.is_empty());
    }
    let t = matches_in("telegram.pcap", "telegram-voip").expect("tg");
    println!(
        "telegram.pcap telegram-voip={} {:?}",
        t.len(),
        t.iter().map(|m| &m.0).collect::<BTreeSet<_>>()
    );
    assert!(t.len() >= 12);
    let tw = matches_in("telegram_videocall.pcapng", "telegram-wrapper").expect("tgw");
    let kinds: BTreeMap<_, usize> = tw.iter().fold(BTreeMap::new(), |mut m, x| {
        *m.entry((x.0.clone(), x.1.clone())).or_default() += 1;
        m
    });
    println!("telegram_videocall.pcapng telegram-wrapper={kinds:?}");
}

#[test]
fn corpus_line_counter_tracker() {
    let Some(s) = shared() else { return };
    let mut files: Vec<String> = std::fs::read_dir(s.join("corpus/pcap"))
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    let mut hits = Vec::new();
    for file in &files {
        for fl in flows(file).expect("flows") {
            let mut t = payload::LineCallTracker::default();
            let mut at = None;
            for (p, fi, i) in &fl.pkts {
                if t.push(&packet(p, *fi, *i)) && at.is_none() {
                    at = Some(*i);
                }
            }
            if let Some(i) = at {
                hits.push((file.clone(), fl.label.clone(), i));
            }
        }
    }
    println!("LineCallTracker hits (file, label, packet index): {hits:?}");
    let line: Vec<_> = hits.iter().filter(|h| h.1 == "line").collect();
    assert_eq!(line.len(), 3, "{hits:?}");
    assert!(hits.iter().all(|h| h.1 == "line"), "{hits:?}");
}

#[test]
fn corpus_line_observed() {
    let Some(l) = matches_in("line.pcap", "line-call") else {
        return;
    };
    println!("line.pcap line-call matches={}", l.len());
    let fp = matches_in("linecall_falsepositve.pcap", "line-call").expect("fp");
    assert!(fp.is_empty(), "{fp:?}");
}

/// Every matcher over every packet of every corpus file: a match outside a
/// flow of the matcher's app is a false positive.
#[test]
fn corpus_matchers_false_positives() {
    let Some(s) = shared() else { return };
    // A match is expected inside flows whose label (app id, or nDPI's name
    // for adjacent flows) names the matcher's app.
    let same_app = |label: &str, name: &str| {
        let app = name.split('-').next().unwrap_or("");
        label.to_ascii_lowercase().contains(app)
    };
    let mut files: Vec<String> = std::fs::read_dir(s.join("corpus/pcap"))
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    let mut table: BTreeMap<(String, &str), (usize, BTreeSet<String>)> = BTreeMap::new();
    let mut fps = Vec::new();
    for file in &files {
        for fl in flows(file).expect("flows") {
            for (p, fi, i) in &fl.pkts {
                for (name, f) in MATCHERS {
                    if let Some(m) = f(&packet(p, *fi, *i)) {
                        let e = table.entry((file.clone(), name)).or_default();
                        e.0 += 1;
                        e.1.insert(format!("{}:{}", fl.label, m.what));
                        if !same_app(&fl.label, name) {
                            fps.push(format!(
                                "{file} {name} {} {} -> {}",
                                fl.label,
                                ep(&p.src),
                                ep(&p.dst)
                            ));
                        }
                    }
                }
            }
        }
    }
    for ((f, n), (c, l)) in &table {
        println!("MATCH {f} {n} packets={c} {l:?}");
    }
    fps.dedup();
    println!("false positives: {fps:#?}");
    assert!(fps.is_empty(), "{fps:#?}");
}

// ------------------------------------------------------------ robustness

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const PORTS: &[u16] = &[8801, 8805, 3478, 550, 1400, 443, 53, 5222, 50004, 12345];

#[test]
fn random_payloads_do_not_match() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let n = 1_000_000u32;
    let mut hits: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut stun_hits, mut chan, mut rtp, mut rtcp) = (0usize, 0usize, 0usize, 0usize);
    let mut buf = Vec::with_capacity(1500);
    for i in 0..n {
        let len = if rng.below(2) == 0 {
            rng.below(129)
        } else {
            rng.below(1501)
        } as usize;
        buf.clear();
        while buf.len() < len {
            buf.extend_from_slice(&rng.next().to_le_bytes());
        }
        buf.truncate(len);
        let tcp = rng.below(4) == 0;
        let p = Packet {
            transport: if tcp { Transport::Tcp } else { Transport::Udp },
            payload: &buf,
            src_port: PORTS[rng.below(PORTS.len() as u64) as usize],
            dst_port: 40000 + (rng.below(20000) as u16),
            from_initiator: rng.below(2) == 0,
            index: i % 8,
        };
        for (name, f) in MATCHERS {
            if f(&p).is_some() {
                *hits.entry(name).or_default() += 1;
            }
        }
        stun_hits += usize::from(stun::parse(&buf, tcp).is_some());
        chan += usize::from(stun::is_turn_channel_data(&buf));
        rtp += usize::from(payload::rtp_header(&buf).is_some());
        rtcp += usize::from(payload::is_rtcp(&buf));
    }
    println!("random {n}: matcher hits {hits:?} stun={stun_hits} channel_data={chan} rtp_header={rtp} rtcp={rtcp}");
    assert_eq!(stun_hits, 0);
    // Strict matchers: zero. The loose ones get a measured bound.
    for (name, _) in MATCHERS {
        let h = hits.get(name).copied().unwrap_or(0);
        let bound = match *name {
            "zoom-sfu" | "telegram-wrapper" => 10, // <= 1e-5
            _ => 0,
        };
        assert!(h <= bound, "{name}: {h} random hits");
    }
    assert!(chan <= 20, "channel data {chan}");
}

#[test]
fn random_flows_do_not_trigger_line_tracker() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let mut hits = 0;
    let mut buf = Vec::new();
    for _ in 0..50_000 {
        let mut t = payload::LineCallTracker::default();
        for i in 0..24u32 {
            let len = 12 + rng.below(200) as usize;
            buf.clear();
            while buf.len() < len {
                buf.extend_from_slice(&rng.next().to_le_bytes());
            }
            buf.truncate(len);
            let p = Packet {
                from_initiator: rng.below(2) == 0,
                index: i,
                ..Packet::udp(&buf, 50000, 29070)
            };
            t.push(&p);
        }
        hits += usize::from(t.matched());
    }
    assert_eq!(hits, 0);
}

fn corpus_samples() -> Vec<(Pkt, bool, u32)> {
    let mut out = Vec::new();
    for f in [
        "stun_zoom.pcapng",
        "teams.pcap",
        "stun_wa_call.pcapng",
        "stun_signal.pcapng",
        "stun_google_meet.pcapng",
        "telegram_videocall.pcapng",
        "zoom2.pcap",
        "discord.pcap",
        "agora-sd-rtn.pcap",
        "dingtalk.pcap",
        "whatsapp_login_chat.pcap",
        "telegram.pcap",
        "stun.pcap",
    ] {
        let Some(fls) = flows(f) else { return out };
        for fl in fls {
            for (p, fi, i) in fl.pkts {
                let pk = packet(&p, fi, i);
                let hit = stun::parse(&p.payload, p.tcp).is_some()
                    || MATCHERS.iter().any(|(_, m)| m(&pk).is_some());
                if hit {
                    out.push((p, fi, i));
                }
            }
        }
    }
    out
}

/// Matchers whose format bounds the message length: a proper prefix of a
/// valid sample can never match.
const LENGTH_BOUND: &[&str] = &[
    "zoom-p2p",
    "discord-ip-discovery",
    "discord-keepalive",
    "line-call",
];

/// The shortest payload each matcher can accept.
fn min_len(name: &str) -> usize {
    match name {
        "zoom-sfu" => 9,
        "zoom-p2p" => 37,
        "discord-ip-discovery" => 74,
        "discord-keepalive" | "line-call" => 8,
        "dingtalk" => 91,
        "agora-sdrtn" => 20,
        "telegram-voip" => 40,
        "telegram-wrapper" => 28,
        "whatsapp-noise" => 4,
        other => panic!("no min_len for {other}"),
    }
}

#[test]
fn truncated_samples_are_rejected() {
    let samples = corpus_samples();
    if samples.is_empty() {
        return;
    }
    let mut stun_samples = 0;
    for (p, fi, i) in &samples {
        let full = stun::parse(&p.payload, p.tcp);
        stun_samples += usize::from(full.is_some());
        let pk = packet(p, *fi, *i);
        let matched: Vec<&str> = MATCHERS
            .iter()
            .filter(|(_, f)| f(&pk).is_some())
            .map(|(n, _)| *n)
            .collect();
        for cut in 0..p.payload.len() {
            let pre = &p.payload[..cut];
            if full.is_some() && !p.tcp {
                assert!(
                    stun::parse(pre, false).is_none(),
                    "STUN prefix {cut} of {}",
                    p.payload.len()
                );
            }
            if let Some(m) = full {
                if p.tcp && cut < m.wire_len() {
                    assert!(stun::parse(pre, true).is_none());
                }
            }
            let q = Packet { payload: pre, ..pk };
            for (n, f) in MATCHERS {
                let r = f(&q);
                if LENGTH_BOUND.contains(n) && matched.contains(n) {
                    assert!(r.is_none(), "{n} matched prefix {cut}");
                }
                // Headers shorter than the fixed part never match.
                if cut < min_len(n) {
                    assert!(r.is_none(), "{n} matched {cut} bytes");
                }
            }
        }
    }
    println!(
        "truncation: {} samples ({} STUN)",
        samples.len(),
        stun_samples
    );
    assert!(stun_samples > 100);
}

#[test]
fn mutations_never_panic() {
    let samples = corpus_samples();
    if samples.is_empty() {
        return;
    }
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut parsed = 0usize;
    for _ in 0..200_000 {
        let (p, fi, i) = &samples[rng.below(samples.len() as u64) as usize];
        let mut b = p.payload.clone();
        for _ in 0..=rng.below(4) {
            match rng.below(5) {
                0 if !b.is_empty() => {
                    let k = rng.below(b.len() as u64) as usize;
                    b[k] = rng.next() as u8;
                }
                1 if b.len() > 4 => {
                    // Corrupt a length-looking field.
                    let k = rng.below(b.len() as u64 - 1) as usize;
                    let v = (rng.next() as u16).to_be_bytes();
                    b[k] = v[0];
                    b[k + 1] = v[1];
                }
                2 => b.truncate(rng.below(b.len() as u64 + 1) as usize),
                3 => b.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
                _ => {
                    let k = rng.below(b.len() as u64 + 1) as usize;
                    b.insert(k, rng.next() as u8);
                }
            }
        }
        for tcp in [false, true] {
            if let Some(m) = stun::parse(&b, tcp) {
                parsed += 1;
                let _ = (
                    m.realm(),
                    m.software(),
                    m.username(),
                    m.xor_mapped_address(),
                    m.mapped_address(),
                    m.method(),
                    m.class(),
                );
                let _ = m.xor_peer_addresses().count() + m.attributes().count();
                if let Some(d) = m.data() {
                    let _ = stun::parse(d, false);
                }
            }
        }
        let q = Packet {
            payload: &b,
            ..packet(p, *fi, *i)
        };
        for (_, f) in MATCHERS {
            let _ = f(&q);
        }
        let _ = (
            payload::rtp_header(&b),
            payload::is_rtcp(&b),
            stun::is_turn_channel_data(&b),
            payload::teams_multiplexed(&b),
        );
    }
    println!("mutations: 200000, still STUN after mutation: {parsed}");
}

// ------------------------------------------------------------ testdata/b

/// A sample from `testdata/b/NAME.hex` (comment lines start with `#`).
fn sample(name: &str) -> Vec<u8> {
    let p = format!("{}/testdata/b/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).expect("sample");
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.chars())
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn samples_stun() {
    let s = sample("stun_signal_401");
    let m = stun::parse(&s, false).expect("401");
    assert_eq!((m.msg_type, m.method()), (0x0113, 0x003));
    assert!(m.is_response() && m.has_attr(stun::attr::ERROR_CODE));
    assert_eq!(m.realm(), Some("signal.org"));

    let s = sample("stun_signal_allocate_ok");
    let m = stun::parse(&s, false).expect("allocate ok");
    assert_eq!(m.msg_type, 0x0103);
    let relayed = m.xor_relayed_address().expect("relayed");
    let mapped = m.xor_mapped_address().expect("mapped");
    assert!(!relayed.ip().is_unspecified() && !mapped.ip().is_unspecified());

    let s = sample("stun_signal_createperm");
    let m = stun::parse(&s, false).expect("createperm");
    assert_eq!(m.method(), 0x008);
    assert!(m.xor_peer_addresses().count() >= 1);

    let s = sample("teams_ms_multiplexed");
    let m = stun::parse(&s, false).expect("ms");
    assert_eq!(m.framing, Framing::MsMultiplexed);
    assert!(payload::teams_multiplexed(&s).is_some());

    let s = sample("teams_tcp_rfc4571");
    let m = stun::parse(&s, true).expect("tcp");
    assert_eq!(m.framing, Framing::Rfc4571);
    assert!(m.has_attr(0x8054));
    assert!(
        stun::parse(&s, false).is_none(),
        "framed bytes are not a UDP message"
    );

    let s = sample("wa_0800");
    assert_eq!(stun::parse(&s, false).map(|m| m.msg_type), Some(0x0800));

    let s = sample("zoom_classic_stun");
    let m = stun::parse(&s, false).expect("classic");
    assert!(!m.has_cookie && (m.has_attr(0x0101) || m.has_attr(0x0103)));
    assert!(m.xor_mapped_address().is_none());

    let s = sample("telegram_realm");
    assert_eq!(
        stun::parse(&s, false).and_then(|m| m.realm()),
        Some("telegram.org")
    );

    for n in [
        "neg_tls_client_hello",
        "neg_dns_query",
        "neg_quic_initial",
        "zoom_sfu_audio",
        "agora_sni",
    ] {
        let s = sample(n);
        assert!(
            stun::parse(&s, false).is_none() && stun::parse(&s, true).is_none(),
            "{n}"
        );
    }
}

#[test]
fn samples_payload() {
    let hit = |name: &str, p: Packet<'_>| {
        let f = payload::matcher(name).expect("matcher");
        f(&p).map(|m| (m.what, m.host.map(str::to_string)))
    };
    let s = sample("zoom_sfu_audio");
    let mut p = Packet::udp(&s, 58117, 8801);
    assert_eq!(hit("zoom-sfu", p), Some(("sfu-audio", None)));
    p.dst_port = 9000;
    assert_eq!(hit("zoom-sfu", p), None, "port gate");
    let s = sample("zoom_sfu_hello");
    assert_eq!(
        hit("zoom-sfu", Packet::udp(&s, 58327, 8801)),
        Some(("sfu-hello", None))
    );
    let s = sample("agora_sni");
    assert_eq!(
        hit("agora-sdrtn", Packet::udp(&s, 35778, 8130)),
        Some((
            "sni-agora",
            Some("23-248-186-179.edge.agora.io".to_string()) // the packet goes to 23.248.186.179
        ))
    );
    let s = sample("discord_ipdisc_resp");
    assert_eq!(
        hit(
            "discord-ip-discovery",
            Packet {
                from_initiator: false,
                ..Packet::udp(&s, 50004, 57955)
            }
        )
        .map(|m| m.0),
        Some("ip-discovery-response")
    );
    // from the side that opened the flow it is no response
    assert_eq!(
        hit("discord-ip-discovery", Packet::udp(&s, 50004, 57955)),
        None
    );
    let s = sample("dingtalk");
    assert!(hit("dingtalk", Packet::tcp(&s, 48910, 443)).is_some());
    assert!(hit("dingtalk", Packet::udp(&s, 48910, 443)).is_none());
    let s = sample("telegram_relay");
    assert!(hit("telegram-voip", Packet::udp(&s, 23174, 521)).is_some());
    assert!(hit("telegram-voip", Packet::udp(&s, 23174, 1521)).is_none());
    for n in ["neg_tls_client_hello", "neg_dns_query", "neg_quic_initial"] {
        let s = sample(n);
        for tr in [Transport::Udp, Transport::Tcp] {
            for (sp, dp) in [(8801, 40000), (550, 40000), (443, 50000), (53, 3478)] {
                let p = Packet {
                    transport: tr,
                    ..Packet::udp(&s, sp, dp)
                };
                assert!(payload::match_any(&p).is_none(), "{n} {sp}");
            }
        }
    }
}
