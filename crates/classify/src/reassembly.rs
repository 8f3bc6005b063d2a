//! Stream reassembly for the first bytes of a flow (TLS ClientHello over
//! TCP, QUIC CRYPTO frames), built to be fed by an attacker.
//!
//! * **Memory follows the bytes received, not the offsets claimed.** The
//!   bytes contiguous from offset 0 sit in one `Vec`; data past a gap is kept
//!   as a short sorted list of chunks. A segment that claims offset 16383
//!   costs its own bytes (clipped to the window), never the gap before it.
//!   [`Reassembler::heap_bytes`] reports the allocation so a caller can
//!   charge it to a global budget.
//! * **Bounded:** bytes past the window (`cap`) are dropped, and at most
//!   [`MAX_CHUNKS`] separate out-of-order chunks are kept (more would let
//!   one-byte holes cost a chunk header each); both set
//!   [`Reassembler::dropped`].
//! * **First copy wins, and a different second copy is flagged.** Data that
//!   overlaps data already held is compared: different bytes for the same
//!   stream position (a fake segment with a low TTL sent before the real
//!   one, the classic desynchronisation trick) set
//!   [`Reassembler::conflict`], which the engine treats as evasion.
//! * Any number of segments: one byte per segment in order costs one append
//!   each.

/// Out-of-order chunks kept at most (after merging adjacent ones).
pub const MAX_CHUNKS: usize = 64;

/// Reassembles `[0, cap)` of a byte stream from pieces at arbitrary offsets.
#[derive(Debug, Clone)]
pub struct Reassembler {
    cap: usize,
    /// Bytes contiguous from offset 0.
    prefix: Vec<u8>,
    /// Data past the prefix: sorted by start, disjoint, never adjacent (and
    /// never touching the prefix: such chunks are moved into it).
    chunks: Vec<(usize, Vec<u8>)>,
    dropped: bool,
    conflict: bool,
}

impl Reassembler {
    pub fn new(cap: usize) -> Self {
        Reassembler {
            cap,
            prefix: Vec::new(),
            chunks: Vec::new(),
            dropped: false,
            conflict: false,
        }
    }

    /// Writes `data` at stream `offset` (may be negative relative to the
    /// window start or run past its end: clipped).
    pub fn insert(&mut self, offset: i64, data: &[u8]) {
        let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let cap = i64::try_from(self.cap).unwrap_or(i64::MAX);
        let stop = offset.saturating_add(len);
        if stop > cap {
            self.dropped = true;
        }
        let start = offset.max(0);
        let end = stop.min(cap);
        if start >= end {
            return;
        }
        // In range of usize: 0 <= start < end <= cap.
        let (start, end) = (start as usize, end as usize);
        let skip = (start as i64 - offset) as usize;
        let Some(src) = data.get(skip..skip + (end - start)) else {
            return;
        };
        // Fast path: in order, nothing pending.
        if start == self.prefix.len() && self.chunks.is_empty() {
            self.prefix.extend_from_slice(src);
            return;
        }
        // Part overlapping the prefix: compare only.
        let plen = self.prefix.len();
        if start < plen {
            let o = end.min(plen);
            if self.prefix.get(start..o) != src.get(..o - start) {
                self.conflict = true;
            }
        }
        if end <= plen {
            return;
        }
        let (start, src) = if start < plen {
            (plen, src.get(plen - start..).unwrap_or(&[]))
        } else {
            (start, src)
        };
        self.insert_past_prefix(start, src);
        self.absorb_chunks();
    }

    /// Adds `src` at `start` (past the prefix): compares the parts that
    /// overlap held chunks, stores the holes, merges neighbours.
    fn insert_past_prefix(&mut self, start: usize, src: &[u8]) {
        let end = start + src.len();
        let mut holes: Vec<(usize, usize)> = Vec::new();
        let mut at = start;
        for (cs, c) in &self.chunks {
            let ce = cs + c.len();
            if ce <= at {
                continue;
            }
            if *cs >= end {
                break;
            }
            if *cs > at {
                holes.push((at, *cs));
            }
            let (os, oe) = (at.max(*cs), end.min(ce));
            if c.get(os - cs..oe - cs) != src.get(os - start..oe - start) {
                self.conflict = true;
            }
            at = oe;
        }
        if at < end {
            holes.push((at, end));
        }
        for (hs, he) in holes {
            if let Some(piece) = src.get(hs - start..he - start) {
                let i = self.chunks.partition_point(|(cs, _)| *cs < hs);
                self.chunks.insert(i, (hs, piece.to_vec()));
            }
        }
        // Merge chunks that now touch.
        let mut merged: Vec<(usize, Vec<u8>)> = Vec::with_capacity(self.chunks.len());
        for (cs, c) in self.chunks.drain(..) {
            match merged.last_mut() {
                Some((ls, l)) if *ls + l.len() == cs => l.extend_from_slice(&c),
                _ => merged.push((cs, c)),
            }
        }
        if merged.len() > MAX_CHUNKS {
            merged.truncate(MAX_CHUNKS);
            self.dropped = true;
        }
        self.chunks = merged;
    }

    /// Moves a chunk that starts at the end of the prefix into it.
    fn absorb_chunks(&mut self) {
        while self
            .chunks
            .first()
            .is_some_and(|(cs, _)| *cs == self.prefix.len())
        {
            let (_, c) = self.chunks.remove(0);
            self.prefix.extend_from_slice(&c);
        }
    }

    /// The bytes received contiguously from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        &self.prefix
    }

    /// Window size.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Some data fell outside the window (or past the chunk limit) and was
    /// dropped.
    pub fn dropped(&self) -> bool {
        self.dropped
    }

    /// Two copies of the same stream position carried different bytes.
    pub fn conflict(&self) -> bool {
        self.conflict
    }

    /// Heap bytes held (allocated capacity, chunk headers included).
    pub fn heap_bytes(&self) -> usize {
        self.prefix.capacity()
            + self.chunks.capacity() * std::mem::size_of::<(usize, Vec<u8>)>()
            + self.chunks.iter().map(|(_, c)| c.capacity()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_model() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _round in 0..300 {
            let cap = 1 + rnd(700);
            let mut r = Reassembler::new(cap);
            let mut model: Vec<Option<u8>> = vec![None; cap];
            let mut conflict = false;
            for _ in 0..rnd(60) {
                let off = rnd(cap + 100) as i64 - 50;
                let len = rnd(150);
                // Small alphabet: overlaps often agree, sometimes not.
                let data: Vec<u8> = (0..len).map(|_| rnd(3) as u8).collect();
                r.insert(off, &data);
                for (k, &b) in data.iter().enumerate() {
                    let pos = off + k as i64;
                    if (0..cap as i64).contains(&pos) {
                        let slot = &mut model[pos as usize];
                        match *slot {
                            None => *slot = Some(b),
                            Some(old) if old != b => conflict = true,
                            Some(_) => {}
                        }
                    }
                }
                let expect: Vec<u8> = model.iter().map_while(|x| *x).collect();
                assert_eq!(r.contiguous(), &expect[..]);
                assert_eq!(r.conflict(), conflict);
                // Memory follows the bytes held, never the window.
                let held = model.iter().filter(|x| x.is_some()).count();
                assert!(
                    r.heap_bytes() <= 2 * held + 64 * 40 + 64,
                    "{}",
                    r.heap_bytes()
                );
            }
        }
    }

    #[test]
    fn out_of_order_and_overlap() {
        let mut r = Reassembler::new(8);
        r.insert(4, b"EFGH");
        assert_eq!(r.contiguous(), b"");
        r.insert(0, b"ABxx");
        assert_eq!(r.contiguous(), b"ABxxEFGH");
        assert!(!r.conflict());
        r.insert(2, b"CD"); // overlap: first copy wins, conflict flagged
        assert_eq!(r.contiguous(), b"ABxxEFGH");
        assert!(r.conflict());
        r.insert(6, b"GHIJ");
        assert!(r.dropped());
        assert_eq!(r.contiguous().len(), 8);
    }

    #[test]
    fn a_lying_offset_does_not_allocate_the_gap() {
        let mut r = Reassembler::new(16 * 1024);
        r.insert(16383, &[0xAA; 1100]);
        assert!(r.dropped());
        assert!(r.heap_bytes() < 128, "{}", r.heap_bytes());
        let mut r = Reassembler::new(16 * 1024);
        r.insert(15000, &[0xAA; 1000]);
        assert!(r.heap_bytes() < 1100, "{}", r.heap_bytes());
        assert_eq!(r.contiguous(), b"");
    }

    #[test]
    fn one_byte_segments_in_order_and_holes_are_bounded() {
        let mut r = Reassembler::new(4096);
        for i in 0..600u16 {
            r.insert(i64::from(i), &[i as u8]);
        }
        assert_eq!(r.contiguous().len(), 600);
        assert!(!r.dropped());
        // Every other byte, past a gap: at most MAX_CHUNKS chunks kept.
        let mut r = Reassembler::new(4096);
        for i in 0..1000i64 {
            r.insert(1 + 2 * i, b"z");
        }
        assert!(r.dropped());
        assert!(r.heap_bytes() < 8 * 1024, "{}", r.heap_bytes());
    }
}
