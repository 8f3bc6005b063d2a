//! Replay of capture files as a [`PacketSource`].

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use geofence_decode::PcapReader;

use crate::{CaptureError, CaptureStats, Captured, PacketSource, MAX_BATCH};

/// A pcap/pcapng file as a packet source: each `poll_batch` hands out up to
/// [`MAX_BATCH`] packets immediately (no pacing; the timeout is ignored).
#[derive(Debug)]
pub struct PcapFileSource<R: Read = File> {
    reader: PcapReader<R>,
    stats: CaptureStats,
    finished: bool,
    /// A read error met after some packets of a batch were delivered; reported next call.
    pending: Option<geofence_decode::DecodeError>,
}

impl PcapFileSource<File> {
    /// Opens a capture file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::new(File::open(path)?)
    }
}

impl<R: Read> PcapFileSource<R> {
    /// Reads a capture from any reader (the header is read now).
    pub fn new(r: R) -> Result<Self, CaptureError> {
        Ok(PcapFileSource {
            reader: PcapReader::new(r)?,
            stats: CaptureStats::default(),
            finished: false,
            pending: None,
        })
    }
}

impl<R: Read> PacketSource for PcapFileSource<R> {
    fn poll_batch(
        &mut self,
        _timeout: Duration,
        f: &mut dyn FnMut(Captured<'_>),
    ) -> Result<usize, CaptureError> {
        if let Some(e) = self.pending.take() {
            return Err(e.into());
        }
        let mut n = 0;
        while n < MAX_BATCH && !self.finished {
            match self.reader.next_packet() {
                Ok(Some(p)) => {
                    f(Captured {
                        ts_nanos: p.ts_nanos,
                        link: p.link,
                        data: p.data,
                    });
                    n += 1;
                    self.stats.received += 1;
                    if (p.data.len() as u64) < u64::from(p.orig_len) {
                        self.stats.truncated += 1;
                    }
                }
                Ok(None) => self.finished = true,
                Err(e) => {
                    self.finished = true;
                    self.stats.malformed += 1;
                    if n == 0 {
                        return Err(e.into());
                    }
                    // deliver what we have; the error comes with the next call
                    self.pending = Some(e);
                }
            }
        }
        Ok(n)
    }

    fn stats(&self) -> CaptureStats {
        self.stats
    }

    fn name(&self) -> &'static str {
        "pcap-file"
    }

    fn is_finished(&self) -> bool {
        self.finished && self.pending.is_none()
    }
}
