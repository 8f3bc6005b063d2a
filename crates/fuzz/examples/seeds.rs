//! Builds the seed corpora for the fuzz targets from real data: the shared
//! capture corpus (`../shared/corpus/pcap`), the classifier test vectors
//! (`crates/classify/testdata`), the shipped configuration and signature
//! files, the MaxMind test databases, and `regressions/<target>/`. Writes
//! `corpus/<target>/<hash>`: at most `MAX_PER_TARGET` files per target,
//! evenly sampled, plus every regression input.
//!
//! Run from `crates/fuzz`: `cargo run --release --example seeds`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use geofence_classify::{quic, stun};
use geofence_decode::{decode, LinkType, PcapReader, Proto};

const MAX_PER_TARGET: usize = 200;
/// Frames of one flow put in one engine seed.
const ENGINE_FRAMES: usize = 24;

/// Per target: (candidates to sample from, inputs always kept).
type Lists = (Vec<Vec<u8>>, Vec<Vec<u8>>);

#[derive(Default)]
struct Seeds(BTreeMap<&'static str, Lists>);

impl Seeds {
    fn add(&mut self, target: &'static str, data: Vec<u8>) {
        self.0.entry(target).or_default().0.push(data);
    }

    /// Kept whatever the sampling.
    fn add_always(&mut self, target: &'static str, data: Vec<u8>) {
        self.0.entry(target).or_default().1.push(data);
    }

    fn write(self, root: &Path) -> std::io::Result<()> {
        for (target, (mut list, always)) in self.0 {
            list.sort();
            list.dedup();
            let step = list.len().div_ceil(MAX_PER_TARGET).max(1);
            let dir = root.join(target);
            fs::create_dir_all(&dir)?;
            let mut n = 0;
            for d in list.iter().step_by(step).chain(&always) {
                let mut h = DefaultHasher::new();
                d.hash(&mut h);
                fs::write(dir.join(format!("{:016x}", h.finish())), d)?;
                n += 1;
            }
            println!("{target}: {n} seeds (of {} distinct)", list.len());
        }
        Ok(())
    }
}

fn hex_lines(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|t| t.len() >= 2 && t.len() % 2 == 0)
        .filter_map(|t| {
            (0..t.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .collect()
}

/// QUIC varint of at most 2^14 - 1 (two bytes).
fn varint2(v: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&(0x4000 | (v as u16 & 0x3FFF)).to_be_bytes());
}

/// A `quic_frames` input rebuilding the decrypted CRYPTO frames of a real
/// Initial: v1, 8-byte DCID, CRYPTO data cut into `chunk`-byte frames, one
/// packet per frame, every packet its own datagram (last chunk first when
/// `reverse`), each padded with PADDING frames.
fn quic_frames_seed(pk: &quic::InitialPackets, chunk: usize, reverse: bool) -> Vec<u8> {
    let mut frames: Vec<(u64, &[u8])> = Vec::new();
    for (off, data) in pk.crypto_frames() {
        for (i, c) in data.chunks(chunk.max(1)).enumerate() {
            frames.push((off + (i * chunk) as u64, c));
        }
    }
    if reverse {
        frames.reverse();
    }
    let mut s = vec![8 << 1, 0x83];
    for (off, data) in frames {
        let mut plain = vec![0x06];
        varint2(off, &mut plain);
        varint2(data.len() as u64, &mut plain);
        plain.extend_from_slice(data);
        plain.resize(plain.len() + 16, 0);
        s.push(1);
        s.extend_from_slice(&(plain.len() as u16).to_be_bytes());
        s.extend_from_slice(&plain);
    }
    s
}

fn engine_link_bits(link: LinkType) -> Option<u8> {
    match link {
        LinkType::Ethernet => Some(0),
        LinkType::RawIp => Some(1),
        LinkType::LinuxSll => Some(2),
        LinkType::LinuxSll2 => Some(3),
        _ => None,
    }
}

type FlowId = (IpAddr, u16, IpAddr, u16, bool);

fn flow_id(p: &geofence_decode::Packet<'_>) -> FlowId {
    let a = (p.src, p.sport);
    let b = (p.dst, p.dport);
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    (x.0, x.1, y.0, y.1, p.proto == Proto::Tcp)
}

fn from_pcap(path: &Path, seeds: &mut Seeds) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = fs::read(path)?;
    // A small prefix of the file itself for the pcap reader.
    seeds.add(
        "decode",
        bytes.get(..bytes.len().min(4096)).unwrap_or(&[]).to_vec(),
    );
    let mut r = PcapReader::new(&bytes[..])?;
    let mut flows: HashMap<FlowId, (Vec<u8>, usize, u64)> = HashMap::new();
    while let Some(raw) = r.next_packet()? {
        let frame = raw.data;
        if frame.len() <= 2048 {
            seeds.add("decode", frame.to_vec());
        }
        let Ok(p) = decode(raw.link, frame) else {
            continue;
        };
        if let Some(bits) = engine_link_bits(raw.link) {
            let e = flows
                .entry(flow_id(&p))
                .or_insert_with(|| (Vec::new(), 0, raw.ts_nanos));
            if e.1 < ENGINE_FRAMES && frame.len() <= 4096 {
                let steps = (raw.ts_nanos.saturating_sub(e.2) / 50_000_000).min(63) as u8;
                e.2 = raw.ts_nanos;
                e.0.extend_from_slice(&(frame.len() as u16).to_be_bytes());
                e.0.push(bits << 6 | steps);
                e.0.extend_from_slice(frame);
                e.1 += 1;
            }
        }
        let pl = p.payload;
        if pl.is_empty() || pl.len() > 65536 {
            continue;
        }
        let tcp = p.proto == Proto::Tcp;
        let dns_port = [53, 5353, 5355].contains(&p.sport) || [53, 5353, 5355].contains(&p.dport);
        if dns_port {
            seeds.add("dns", pl.to_vec());
        }
        if pl.first() == Some(&0x16) {
            seeds.add("tls", pl.to_vec());
        }
        if !tcp && (quic::is_quic_initial(pl) || quic::gquic_client_hello(pl).is_some()) {
            seeds.add("quic", pl.to_vec());
        }
        if !tcp {
            if let Ok(pk) = quic::decrypt_initials(pl) {
                for (chunk, rev) in [(usize::MAX, false), (300, true)] {
                    seeds.add("quic_frames", quic_frames_seed(&pk, chunk, rev));
                }
            }
        }
        if stun::parse(pl, tcp).is_some() || stun::ms_multiplexed_inner(pl).is_some() {
            seeds.add("stun", pl.to_vec());
        }
        if !dns_port && pl.len() <= 2048 {
            let mut s = Vec::with_capacity(pl.len() + 6);
            s.extend_from_slice(&p.sport.to_be_bytes());
            s.extend_from_slice(&p.dport.to_be_bytes());
            s.push(u8::from(tcp));
            s.push(0);
            s.extend_from_slice(pl);
            seeds.add("payload", s);
        }
    }
    for (_, (seed, _, _)) in flows {
        seeds.add("engine_long", seed.clone());
        seeds.add("engine", seed);
    }
    Ok(())
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = here.join("../..");
    let shared = repo.join("../shared");
    let mut seeds = Seeds::default();

    let pcaps = shared.join("corpus/pcap");
    let mut caps = files(&pcaps, "pcap");
    caps.extend(files(&pcaps, "pcapng"));
    if caps.is_empty() {
        println!(
            "no captures under {} (shared corpus absent)",
            pcaps.display()
        );
    }
    for p in &caps {
        if let Err(e) = from_pcap(p, &mut seeds) {
            println!("{}: {e}", p.display());
        }
    }

    for sub in ["a", "b"] {
        let dir = repo.join("crates/classify/testdata").join(sub);
        let mut all = files(&dir, "hex");
        all.extend(files(&dir, "txt"));
        for f in all {
            let mut vs = hex_lines(&fs::read_to_string(&f)?);
            // Some vectors are one packet wrapped over several lines.
            if vs.len() > 1 {
                vs.push(vs.concat());
            }
            for v in vs {
                for t in ["dns", "tls", "quic", "stun"] {
                    seeds.add(t, v.clone());
                }
                let mut s = vec![0x0d, 0x96, 0x01, 0xbb, 0, 0];
                s.extend_from_slice(&v);
                seeds.add("payload", s);
                if let Ok(pk) = quic::decrypt_initials(&v) {
                    for (chunk, rev) in [(usize::MAX, false), (300, true)] {
                        seeds.add("quic_frames", quic_frames_seed(&pk, chunk, rev));
                    }
                }
            }
        }
    }

    let mut policies = files(&repo.join("config"), "toml");
    policies.extend(files(&repo.join("config/examples"), "toml"));
    for f in policies {
        seeds.add("policy", fs::read(f)?);
    }
    for f in files(&repo.join("config/apps.d"), "toml") {
        seeds.add("sigdb", fs::read(f)?);
    }
    for sub in ["geo/maxmind-test", "geo/bad"] {
        for f in files(&shared.join(sub), "mmdb") {
            let b = fs::read(f)?;
            if b.len() <= 32 * 1024 {
                seeds.add("mmdb", b);
            }
        }
    }
    // The regression inputs (hostile packets, past findings) seed too.
    for t in [
        "dns",
        "tls",
        "quic",
        "quic_frames",
        "stun",
        "payload",
        "decode",
        "policy",
        "sigdb",
        "engine",
        "mmdb",
    ] {
        let dir = here.join("regressions").join(t);
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.path().is_file() {
                seeds.add_always(t, fs::read(e.path())?);
            }
        }
    }
    seeds.write(&here.join("corpus"))?;
    Ok(())
}
