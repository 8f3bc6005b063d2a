//! Shared helpers of the decode integration tests: corpus location, a tiny pcapng
//! writer (both byte orders) and a deterministic RNG.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/corpus/pcap`, or `None` (with a message) when absent.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/pcap"
    ));
    if dir.is_dir() {
        Some(dir)
    } else {
        geofence_testkit::skip(format_args!("corpus not found at {}", dir.display()));
        None
    }
}

/// Builds pcapng bytes block by block.
pub struct NgWriter {
    pub out: Vec<u8>,
    be: bool,
}

impl NgWriter {
    pub fn new() -> Self {
        NgWriter {
            out: Vec::new(),
            be: false,
        }
    }

    fn u16b(&self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn u32b(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    pub fn block(&mut self, btype: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        let (t, l) = (self.u32b(btype), self.u32b(total));
        self.out.extend_from_slice(&t);
        self.out.extend_from_slice(&l);
        self.out.extend_from_slice(&body);
        self.out.extend_from_slice(&l);
    }

    /// Starts a section in the given byte order.
    pub fn shb(&mut self, big_endian: bool) {
        self.be = big_endian;
        let mut b = Vec::new();
        b.extend_from_slice(&self.u32b(0x1A2B_3C4D));
        b.extend_from_slice(&self.u16b(1));
        b.extend_from_slice(&self.u16b(0));
        b.extend_from_slice(&[0xFF; 8]); // section length unknown
        self.block(0x0A0D_0D0A, &b);
    }

    /// Interface description; `tsresol` is the raw if_tsresol byte, if any.
    pub fn idb(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>, tsoffset: Option<i64>) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u16b(linktype));
        b.extend_from_slice(&self.u16b(0));
        b.extend_from_slice(&self.u32b(snaplen));
        // an unrelated option first (if_name), to exercise option skipping
        b.extend_from_slice(&self.u16b(2));
        b.extend_from_slice(&self.u16b(3));
        b.extend_from_slice(b"et0\0");
        if let Some(r) = tsresol {
            b.extend_from_slice(&self.u16b(9));
            b.extend_from_slice(&self.u16b(1));
            b.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            b.extend_from_slice(&self.u16b(14));
            b.extend_from_slice(&self.u16b(8));
            b.extend_from_slice(&if self.be {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            });
        }
        b.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        self.block(1, &b);
    }

    pub fn epb(&mut self, iface: u32, ts_units: u64, data: &[u8], orig_len: u32) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u32b(iface));
        b.extend_from_slice(&self.u32b((ts_units >> 32) as u32));
        b.extend_from_slice(&self.u32b(ts_units as u32));
        b.extend_from_slice(&self.u32b(data.len() as u32));
        b.extend_from_slice(&self.u32b(orig_len));
        b.extend_from_slice(data);
        self.block(6, &b);
    }

    pub fn spb(&mut self, data: &[u8]) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u32b(data.len() as u32));
        b.extend_from_slice(data);
        self.block(3, &b);
    }
}

/// xorshift64*: deterministic, seedable, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// Applies 1-4 random mutations: byte flips, interesting values, truncation,
    /// insertion, deletion.
    pub fn mutate(&mut self, data: &mut Vec<u8>) {
        for _ in 0..1 + self.below(4) {
            let len = data.len();
            match self.below(7) {
                0 | 1 if len > 0 => {
                    let i = self.below(len);
                    data[i] ^= 1 << self.below(8);
                }
                2 if len > 0 => {
                    let i = self.below(len);
                    data[i] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x40][self.below(6)];
                }
                3 if len > 0 => {
                    let l = self.below(len);
                    data.truncate(l);
                }
                4 => {
                    let i = self.below(len + 1);
                    let v = self.next() as u8;
                    data.insert(i, v);
                }
                5 if len > 0 => {
                    let i = self.below(len);
                    data.remove(i);
                }
                _ if len >= 4 => {
                    // overwrite a 32-bit field with a large or tiny length
                    let i = self.below(len - 3);
                    let v: u32 = [0xFFFF_FFFF, 0x0004_0001, 0, 12, 0x8000_0000][self.below(5)];
                    data[i..i + 4].copy_from_slice(&v.to_le_bytes());
                }
                _ => {}
            }
        }
    }
}
