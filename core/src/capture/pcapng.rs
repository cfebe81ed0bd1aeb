//! pcapng files, walked with exactly the semantics of `sniffer/capture/pcapng.py` (the Python
//! reference, itself libpcap's sf-pcapng.c without its one-link-type limit):
//!
//! - each section (SHB) has its own byte order and its own interfaces, each interface (IDB) its
//!   link type, snaplen (libpcap's adjustment), `if_tsresol` and `if_tsoffset`;
//! - packets come from EPBs (the hot path), SPBs (no timestamp: the stream's last one) and
//!   obsolete PBs; `ts = (sec + offset) + usec / 1e6` with the sub-second part reduced to
//!   whole microseconds, as libpcap does for Zeek;
//! - a block length libpcap would refuse is an error wherever it stands; only a block of a sane
//!   length running past the end of the input is the truncated last block (a note);
//! - Custom Blocks are handed back raw (with the byte order and the stream's last time) when
//!   asked for, so the Python side decodes sniffer's records in file order; other blocks it
//!   does not know are reported as `Unknown` (a stats key on the Python side).
//!
//! The input is read in bounded windows into one reused buffer, as `pcap::PcapWalker` does; a
//! block longer than the window grows it for that block (bounded by the maximum block length).

use std::io::Read;

use super::window::Window;

use super::pcap::{
    max_snaplen_for_dlt, WalkError, DEFAULT_WINDOW, FLAG_CAPLEN_OVER_SNAPLEN,
    FLAG_SNAPLEN_TRUNCATED, MIN_WINDOW,
};

pub const SHB: u32 = 0x0A0D_0D0A;
pub const IDB: u32 = 1;
pub const PB: u32 = 2;
pub const SPB: u32 = 3;
pub const EPB: u32 = 6;
/// Known blocks that carry nothing the walk needs: skipped silently.
const IGNORED: [u32; 9] = [4, 5, 7, 8, 9, 0x0A, 0x0BAD, 0x4000_0BAD, 0x8000_0001];
/// Custom Blocks: copyable, not-to-be-copied.
const CUSTOM: [u32; 2] = [0x0BAD, 0x4000_0BAD];
/// libpcap INITIAL_MAX_BLOCKSIZE: longer blocks are corrupt.
pub const MAX_BLOCK: u64 = 16 * 1024 * 1024;
const OPT_TSRESOL: u16 = 9;
const OPT_TSOFFSET: u16 = 14;

/// Per-frame notes beyond pcap's FLAG_* bits (the stats keys the reference counts).
pub const FLAG_SPB_NO_TIMESTAMP: u8 = 8;
pub const FLAG_OBSOLETE_PACKET_BLOCK: u8 = 16;

/// The longest block libpcap accepts once an interface of `linktype` is known.
pub fn max_block_for(linktype: u16) -> u64 {
    MAX_BLOCK.max(8 + 20 + u64::from(max_snaplen_for_dlt(linktype)) + 131_072 + 4)
}

/// An interface of the current section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface {
    pub linktype: u16,
    /// The snaplen in force (libpcap's adjustment).
    pub snaplen: u32,
    /// Timestamp units per second.
    pub units: u64,
    /// Timestamp offset in seconds.
    pub offset: i64,
}

/// Counts the walk noted that belong to no frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notes {
    pub truncated_final_record: u64,
}

/// One packet, lent out of the walker's buffer until the next call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame<'a> {
    pub ts: f64,
    pub linktype: u16,
    pub data: &'a [u8],
    pub wirelen: u32,
    /// The EPB flags' direction (a Linux sll_pkttype), when directions are asked for.
    pub direction: Option<u8>,
    /// File offset of the block.
    pub offset: u64,
    /// Where `data` starts in `buffer()`.
    pub at: usize,
    /// FLAG_* bits: what this block added to the stats.
    pub flags: u8,
}

/// What one step of the walk met.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Block<'a> {
    Frame(Frame<'a>),
    /// A Custom Block (only when asked for), whole, for the Python side to decode.
    Custom {
        offset: u64,
        big_endian: bool,
        /// The stream's last packet time when the block was met.
        last_ts: f64,
        block: &'a [u8],
    },
    /// A block of a type the reference counts as `pcapng_unknown_block`.
    Unknown {
        offset: u64,
    },
    /// A block consumed with nothing to report (SHB, IDB, ignored ones).
    Other,
}

fn u16_at(b: &[u8], off: usize, be: bool) -> Option<u16> {
    let a: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
    Some(if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    })
}

fn u32_at(b: &[u8], off: usize, be: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    })
}

fn i64_at(b: &[u8], off: usize, be: bool) -> Option<i64> {
    let a: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(if be {
        i64::from_be_bytes(a)
    } else {
        i64::from_le_bytes(a)
    })
}

fn input(offset: u64, message: String) -> WalkError {
    WalkError::Input {
        offset: Some(offset),
        message,
    }
}

fn short(offset: u64, what: &str, blen: u32) -> WalkError {
    input(offset, format!("{what} block length {blen} is too short"))
}

fn no_idb(offset: u64, iface: u32) -> WalkError {
    input(
        offset,
        format!(
            "a packet arrived on interface {iface}, but there's no Interface Description Block \
             for that interface"
        ),
    )
}

fn caplen_past_block(offset: u64, caplen: u32, blen: u32) -> WalkError {
    input(
        offset,
        format!("captured length {caplen} runs past the end of its {blen}-byte block"),
    )
}

fn caplen_over_max(offset: u64, caplen: u32, linktype: u16) -> WalkError {
    input(
        offset,
        format!(
            "invalid packet capture length {caplen}, bigger than maximum of {}",
            max_snaplen_for_dlt(linktype)
        ),
    )
}

fn bad_length(offset: u64, blen: u32, max_block: u64) -> WalkError {
    if blen & 3 != 0 {
        input(
            offset,
            format!("block length {blen} is not a multiple of 4"),
        )
    } else if blen < 12 {
        input(offset, format!("block length {blen} is less than 12"))
    } else {
        input(
            offset,
            format!("block length {blen} is bigger than maximum {max_block}"),
        )
    }
}

fn truncated(offset: u64) -> WalkError {
    input(offset, "block past the buffer".into())
}

/// `(sec + offset) + usec / 1e6` as the reference computes it (Python ints, then one
/// correctly rounded conversion to float).
fn timestamp(t: u64, units: u64, offset: i64) -> f64 {
    let units = units.max(1);
    let (sec, usec) = if units == 1_000_000 {
        (t / units, t % units)
    } else {
        let frac = u128::from(t % units);
        (
            t / units,
            u64::try_from(frac * 1_000_000 / u128::from(units)).unwrap_or(u64::MAX),
        )
    };
    let whole = i128::from(sec) + i128::from(offset);
    whole as f64 + usec as f64 / 1e6
}

/// The Linux sll_pkttype an EPB's options say (epb_flags, code 2), or None.
fn epb_direction(b: &[u8], mut pos: usize, end: usize, be: bool) -> Option<u8> {
    while pos.checked_add(4)? <= end {
        let code = u16_at(b, pos, be)?;
        let olen = u16_at(b, pos + 2, be)?;
        if code == 0 {
            break;
        }
        if code == 2 && olen == 4 && pos + 8 <= end {
            let flags = u32_at(b, pos + 4, be)?;
            return match flags & 3 {
                2 => Some(4),
                1 => Some(match (flags >> 2) & 7 {
                    2 => 2,
                    3 => 1,
                    4 => 3,
                    _ => 0,
                }),
                _ => None,
            };
        }
        pos = pos.checked_add(4 + ((usize::from(olen) + 3) & !3))?;
    }
    None
}

/// Units per second of an `if_tsresol` value.
fn tsresol_units(v: u8, offset: u64) -> Result<u64, WalkError> {
    if v & 0x80 != 0 {
        let p = v & 0x7F;
        if p > 63 {
            return Err(input(offset, format!("if_tsresol 2^-{p} is too high")));
        }
        return Ok(1u64 << p);
    }
    if v > 19 {
        return Err(input(offset, format!("if_tsresol 10^-{v} is too high")));
    }
    Ok(10u64.pow(u32::from(v)))
}

/// An Interface Description Block (`b` is the whole block).
fn parse_idb(b: &[u8], blen: u32, be: bool, offset: u64) -> Result<Iface, WalkError> {
    if blen < 20 {
        return Err(short(offset, "interface description", blen));
    }
    let linktype = u16_at(b, 8, be).ok_or_else(|| truncated(offset))?;
    let snaplen = u32_at(b, 12, be).ok_or_else(|| truncated(offset))?;
    let (mut units, mut tsoffset) = (1_000_000u64, 0i64);
    let end = b.len().saturating_sub(4);
    let mut o = 16usize;
    while o + 4 <= end {
        let code = u16_at(b, o, be).ok_or_else(|| truncated(offset))?;
        let olen = u16_at(b, o + 2, be).ok_or_else(|| truncated(offset))?;
        if code == 0 {
            break;
        }
        if o + 4 + usize::from(olen) > end {
            return Err(input(
                offset,
                format!("interface option {code} of length {olen} runs past the end of its block"),
            ));
        }
        if code == OPT_TSRESOL {
            if olen != 1 {
                return Err(input(
                    offset,
                    format!("if_tsresol option with length {olen} != 1"),
                ));
            }
            let v = *b.get(o + 4).ok_or_else(|| truncated(offset))?;
            units = tsresol_units(v, offset)?;
        } else if code == OPT_TSOFFSET {
            if olen != 8 {
                return Err(input(
                    offset,
                    format!("if_tsoffset option with length {olen} != 8"),
                ));
            }
            tsoffset = i64_at(b, o + 4, be).ok_or_else(|| truncated(offset))?;
        }
        o += 4 + ((usize::from(olen) + 3) & !3);
    }
    let limit = max_snaplen_for_dlt(linktype);
    Ok(Iface {
        linktype,
        snaplen: if snaplen > 0 && snaplen <= limit {
            snaplen
        } else {
            limit
        },
        units,
        offset: tsoffset,
    })
}

/// The block walk over any byte stream, from its first byte (an SHB).
///
/// `while let Some(block) = walker.next_block()? { ... }`: each block borrows the walker's
/// buffer until the next call. After an error or the end, `next_block` returns `Ok(None)`.
pub struct PcapngWalker<R> {
    /// The read window over the input (buf[pos..end] read but not yet walked).
    w: Window<R>,
    done: bool,
    big_endian: bool,
    ifaces: Vec<Iface>,
    max_block: u64,
    last_ts: f64,
    customs: bool,
    directions: bool,
    packets: u64,
    notes: Notes,
}

impl<R: Read> PcapngWalker<R> {
    pub fn new(reader: R) -> Self {
        Self::with_window(reader, DEFAULT_WINDOW, false, false)
    }

    /// `customs`: hand Custom Blocks back (else they are skipped silently); `directions`:
    /// read each EPB's direction.
    pub fn with_window(reader: R, window: usize, customs: bool, directions: bool) -> Self {
        let window = window.max(MIN_WINDOW);
        PcapngWalker {
            w: Window::new(reader, window),
            done: false,
            big_endian: false,
            ifaces: Vec::new(),
            max_block: MAX_BLOCK,
            last_ts: 0.0,
            customs,
            directions,
            packets: 0,
            notes: Notes::default(),
        }
    }

    pub fn notes(&self) -> Notes {
        self.notes
    }

    /// Packets walked so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The bytes read and not yet dropped: frames are `buffer()[at..at + data.len()]` until
    /// the next call that reads.
    pub fn buffer(&self) -> &[u8] {
        self.w.buf.get(..self.w.end).unwrap_or_default()
    }

    /// File offset of the next block (of the failing one after an error).
    pub fn offset(&self) -> u64 {
        self.w.base.saturating_add(self.w.pos as u64)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The type and length of the block at `pos` in the current byte order.
    fn header(&self) -> Option<(u32, u32)> {
        let h = self.w.buf.get(self.w.pos..self.w.end)?;
        Some((
            u32_at(h, 0, self.big_endian)?,
            u32_at(h, 4, self.big_endian)?,
        ))
    }

    /// The byte order an SHB at `pos` says: Some(Ok(big_endian)), Some(Err(bom)) if bad.
    fn section_order(&self) -> Option<Result<bool, [u8; 4]>> {
        let bom: [u8; 4] = self
            .w
            .buf
            .get(self.w.pos + 8..self.w.pos + 12)?
            .try_into()
            .ok()?;
        Some(match bom {
            [0x4d, 0x3c, 0x2b, 0x1a] => Ok(false),
            [0x1a, 0x2b, 0x3c, 0x4d] => Ok(true),
            other => Err(other),
        })
    }

    /// Whether `next_block` can answer without reading (a whole block, or one refused, is in
    /// the buffer, or the walk is over). A batch stops there rather than move the buffer.
    pub fn block_buffered(&self) -> bool {
        if self.done {
            return true;
        }
        if self.w.end.saturating_sub(self.w.pos) < 12 {
            return false;
        }
        let Some((btype, mut blen)) = self.header() else {
            return false;
        };
        if btype == SHB {
            match self.section_order() {
                Some(Ok(be)) => {
                    blen = self
                        .w
                        .buf
                        .get(self.w.pos..self.w.end)
                        .and_then(|h| u32_at(h, 4, be))
                        .unwrap_or(0);
                }
                _ => return true,
            }
        }
        if blen & 3 != 0 || blen < 12 || u64::from(blen) > self.max_block {
            return true;
        }
        self.w.end - self.w.pos >= blen as usize
    }

    /// Make buf[pos..end] hold at least `need` bytes; false if the input ends first (the
    /// walk is then over, a partial block noted).
    fn need(&mut self, need: usize) -> Result<bool, WalkError> {
        match self.fill(need) {
            Ok(true) => Ok(true),
            Ok(false) => {
                if self.w.end > self.w.pos {
                    self.notes.truncated_final_record += 1;
                }
                self.done = true;
                Ok(false)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    fn fill(&mut self, need: usize) -> Result<bool, WalkError> {
        Ok(self.w.fill(need)?)
    }

    /// The error ends the walk.
    fn fail<T>(&mut self, e: WalkError) -> Result<T, WalkError> {
        self.done = true;
        Err(e)
    }

    /// The next block, or None at the end of the input (or after an error).
    pub fn next_block(&mut self) -> Result<Option<Block<'_>>, WalkError> {
        if self.done {
            return Ok(None);
        }
        let (btype, blen) = loop {
            match self.header() {
                Some(h) if self.w.end - self.w.pos >= 12 => break h,
                _ => {
                    if !self.need(12)? {
                        return Ok(None);
                    }
                }
            }
        };
        let offset = self.offset();
        if btype == EPB && (32..=self.max_block).contains(&u64::from(blen)) && blen & 3 == 0 {
            return self.epb(blen, offset);
        }
        let mut blen = blen;
        if btype == SHB {
            match self.section_order() {
                Some(Ok(be)) => self.big_endian = be,
                Some(Err(bom)) => {
                    let hex: String = bom.iter().map(|b| format!("{b:02x}")).collect();
                    return self.fail(input(
                        offset,
                        format!("section header has a bad byte-order magic 0x{hex}"),
                    ));
                }
                None => return self.fail(truncated(offset)),
            }
            blen = match self.header() {
                Some((_, l)) => l,
                None => return self.fail(truncated(offset)),
            };
        }
        if blen & 3 != 0 || blen < 12 || u64::from(blen) > self.max_block {
            return self.fail(bad_length(offset, blen, self.max_block));
        }
        if !self.need(blen as usize)? {
            return Ok(None);
        }
        let be = self.big_endian;
        let start = self.w.pos;
        let stop = start + blen as usize;
        let Some(b) = self.w.buf.get(start..stop) else {
            return self.fail(truncated(offset));
        };
        let trailer = u32_at(b, b.len() - 4, be).unwrap_or(0);
        if trailer != blen {
            return self.fail(input(
                offset,
                format!("block total length in header {blen} and trailer {trailer} don't match"),
            ));
        }
        match btype {
            EPB => self.fail(short(offset, "enhanced packet", blen)),
            SPB => {
                if blen < 16 {
                    return self.fail(short(offset, "simple packet", blen));
                }
                let Some(iface) = self.ifaces.first().copied() else {
                    return self.fail(no_idb(offset, 0));
                };
                let wirelen = u32_at(b, 8, be).unwrap_or(0);
                let caplen = wirelen.min(iface.snaplen).min(blen - 16);
                let packet = Packet {
                    ts: self.last_ts,
                    iface,
                    at: start + 12,
                    stop,
                    caplen,
                    wirelen,
                    flags: FLAG_SPB_NO_TIMESTAMP,
                    direction: None,
                    offset,
                };
                self.frame(packet)
            }
            IDB => {
                let iface = match parse_idb(b, blen, be, offset) {
                    Ok(i) => i,
                    Err(e) => return self.fail(e),
                };
                self.max_block = self.max_block.max(max_block_for(iface.linktype));
                self.ifaces.push(iface);
                self.w.pos = stop;
                Ok(Some(Block::Other))
            }
            PB => {
                if blen < 32 {
                    return self.fail(short(offset, "packet", blen));
                }
                let iface_id = u16_at(b, 8, be).unwrap_or(0);
                let (th, tl) = (
                    u32_at(b, 12, be).unwrap_or(0),
                    u32_at(b, 16, be).unwrap_or(0),
                );
                let (caplen, wirelen) = (
                    u32_at(b, 20, be).unwrap_or(0),
                    u32_at(b, 24, be).unwrap_or(0),
                );
                let Some(iface) = self.ifaces.get(usize::from(iface_id)).copied() else {
                    return self.fail(no_idb(offset, u32::from(iface_id)));
                };
                if let Err(e) = check_caplen(iface, caplen, blen, offset) {
                    return self.fail(e);
                }
                let packet = Packet {
                    ts: timestamp(
                        (u64::from(th) << 32) | u64::from(tl),
                        iface.units,
                        iface.offset,
                    ),
                    iface,
                    at: start + 28,
                    stop,
                    caplen,
                    wirelen,
                    flags: FLAG_OBSOLETE_PACKET_BLOCK,
                    direction: None,
                    offset,
                };
                self.last_ts = packet.ts;
                self.frame(packet)
            }
            SHB => {
                if blen < 28 {
                    return self.fail(short(offset, "section header", blen));
                }
                let (major, minor) = (
                    u16_at(b, 12, be).unwrap_or(0),
                    u16_at(b, 14, be).unwrap_or(0),
                );
                if major != 1 {
                    return self.fail(input(
                        offset,
                        format!("unsupported pcapng savefile version {major}.{minor}"),
                    ));
                }
                self.ifaces.clear();
                self.w.pos = stop;
                Ok(Some(Block::Other))
            }
            _ => {
                self.w.pos = stop;
                if self.customs && CUSTOM.contains(&btype) {
                    let block = self
                        .w
                        .buf
                        .get(start..stop)
                        .ok_or_else(|| truncated(offset))?;
                    Ok(Some(Block::Custom {
                        offset,
                        big_endian: be,
                        last_ts: self.last_ts,
                        block,
                    }))
                } else if IGNORED.contains(&btype) {
                    Ok(Some(Block::Other))
                } else {
                    Ok(Some(Block::Unknown { offset }))
                }
            }
        }
    }

    /// The hot path: an Enhanced Packet Block of a sane length at `pos`.
    fn epb(&mut self, blen: u32, offset: u64) -> Result<Option<Block<'_>>, WalkError> {
        if !self.need(blen as usize)? {
            return Ok(None);
        }
        let be = self.big_endian;
        let start = self.w.pos;
        let stop = start + blen as usize;
        let Some(b) = self.w.buf.get(start..stop) else {
            return self.fail(truncated(offset));
        };
        let field = |o: usize| u32_at(b, o, be).unwrap_or(0);
        let trailer = field(b.len() - 4);
        if trailer != blen {
            return self.fail(input(
                offset,
                format!("block total length in header {blen} and trailer {trailer} don't match"),
            ));
        }
        let (iface_id, th, tl, caplen, wirelen) =
            (field(8), field(12), field(16), field(20), field(24));
        let Some(iface) = usize::try_from(iface_id)
            .ok()
            .and_then(|i| self.ifaces.get(i))
            .copied()
        else {
            return self.fail(no_idb(offset, iface_id));
        };
        if let Err(e) = check_caplen(iface, caplen, blen, offset) {
            return self.fail(e);
        }
        let direction = if self.directions {
            let opts = 28 + ((caplen as usize + 3) & !3);
            epb_direction(b, opts, b.len() - 4, be)
        } else {
            None
        };
        let packet = Packet {
            ts: timestamp(
                (u64::from(th) << 32) | u64::from(tl),
                iface.units,
                iface.offset,
            ),
            iface,
            at: start + 28,
            stop,
            caplen,
            wirelen,
            flags: 0,
            direction,
            offset,
        };
        self.last_ts = packet.ts;
        self.frame(packet)
    }

    /// A packet block's frame, its checks passed: the walk moves past the block, the packet
    /// is counted, and the notes it adds join `p.flags`.
    fn frame(&mut self, p: Packet) -> Result<Option<Block<'_>>, WalkError> {
        self.w.pos = p.stop;
        self.packets += 1;
        let mut flags = p.flags;
        if p.caplen < p.wirelen {
            flags |= FLAG_SNAPLEN_TRUNCATED;
        }
        if p.caplen > p.iface.snaplen {
            flags |= FLAG_CAPLEN_OVER_SNAPLEN;
        }
        let data = self
            .w
            .buf
            .get(p.at..p.at + p.caplen as usize)
            .ok_or_else(|| truncated(p.offset))?;
        Ok(Some(Block::Frame(Frame {
            ts: p.ts,
            linktype: p.iface.linktype,
            data,
            wirelen: p.wirelen,
            direction: p.direction,
            offset: p.offset,
            at: p.at,
            flags,
        })))
    }
}

/// What a packet block (EPB, SPB or the obsolete PB) says of its frame.
struct Packet {
    ts: f64,
    iface: Iface,
    /// Where the frame's bytes start in the window, and where the block ends.
    at: usize,
    stop: usize,
    caplen: u32,
    wirelen: u32,
    flags: u8,
    direction: Option<u8>,
    offset: u64,
}

/// The caplen checks of an EPB or PB (libpcap's): within its block, and at most the
/// snaplen or the link type's maximum.
fn check_caplen(iface: Iface, caplen: u32, blen: u32, offset: u64) -> Result<(), WalkError> {
    if caplen > blen - 32 {
        return Err(caplen_past_block(offset, caplen, blen));
    }
    if caplen > iface.snaplen && caplen > max_snaplen_for_dlt(iface.linktype) {
        return Err(caplen_over_max(offset, caplen, iface.linktype));
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    fn block(be: bool, btype: u32, body: &[u8]) -> Vec<u8> {
        let u = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let blen = 12 + body.len() as u32;
        let mut b = Vec::new();
        b.extend(u(btype));
        b.extend(u(blen));
        b.extend(body);
        b.extend(u(blen));
        b
    }

    fn shb(be: bool) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(if be {
            0x1A2B_3C4Du32.to_be_bytes()
        } else {
            0x1A2B_3C4Du32.to_le_bytes()
        });
        body.extend(if be { [0, 1, 0, 0] } else { [1, 0, 0, 0] });
        body.extend([0xFF; 8]);
        block(be, SHB, &body)
    }

    fn idb(be: bool, linktype: u16, snaplen: u32, tsresol: Option<u8>) -> Vec<u8> {
        let mut body = Vec::new();
        let u16b = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        body.extend(u16b(linktype));
        body.extend(u16b(0));
        body.extend(if be {
            snaplen.to_be_bytes()
        } else {
            snaplen.to_le_bytes()
        });
        if let Some(r) = tsresol {
            body.extend(u16b(9));
            body.extend(u16b(1));
            body.extend([r, 0, 0, 0]);
            body.extend([0, 0, 0, 0]);
        }
        block(be, IDB, &body)
    }

    fn epb(be: bool, iface: u32, t: u64, data: &[u8], wirelen: u32, flags: Option<u32>) -> Vec<u8> {
        let u = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut body = Vec::new();
        for v in [
            iface,
            (t >> 32) as u32,
            t as u32,
            data.len() as u32,
            wirelen,
        ] {
            body.extend(u(v));
        }
        body.extend(data);
        while body.len() % 4 != 0 {
            body.push(0);
        }
        if let Some(f) = flags {
            let u16b = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
            body.extend(u16b(2));
            body.extend(u16b(4));
            body.extend(u(f));
            body.extend([0, 0, 0, 0]);
        }
        block(be, EPB, &body)
    }

    #[allow(clippy::type_complexity)]
    fn walk(
        file: &[u8],
        window: usize,
    ) -> (
        Vec<(f64, u16, Vec<u8>, u32, Option<u8>)>,
        Result<(), String>,
        usize,
    ) {
        let mut w = PcapngWalker::with_window(file, window, true, true);
        let mut out = vec![];
        let mut customs = 0;
        loop {
            match w.next_block() {
                Ok(Some(Block::Frame(f))) => {
                    out.push((f.ts, f.linktype, f.data.to_vec(), f.wirelen, f.direction))
                }
                Ok(Some(Block::Custom { .. })) => customs += 1,
                Ok(Some(_)) => {}
                Ok(None) => return (out, Ok(()), customs),
                Err(e) => return (out, Err(e.to_string()), customs),
            }
        }
    }

    fn sample(be: bool) -> Vec<u8> {
        let mut f = shb(be);
        f.extend(idb(be, 1, 0, None));
        f.extend(idb(be, 113, 100, Some(9)));
        f.extend(epb(
            be,
            0,
            1_700_000_000_123_456,
            b"abcde",
            60,
            Some(1 | (2 << 2)),
        ));
        f.extend(block(be, 0x0BAD, b"\0\0\x7e\xd9{}"));
        f.extend(epb(be, 1, 1_700_000_000_123_456_789, b"xyz", 3, Some(2)));
        f
    }

    #[test]
    fn both_byte_orders_and_resolutions() {
        for window in [64, 100, 1 << 20] {
            let le = walk(&sample(false), window);
            let be = walk(&sample(true), window);
            assert_eq!(le, be);
            assert!(le.1.is_ok());
            assert_eq!(le.2, 1);
            assert_eq!(le.0.len(), 2);
            assert_eq!(
                le.0[0],
                (
                    1_700_000_000f64 + 123_456f64 / 1e6,
                    1,
                    b"abcde".to_vec(),
                    60,
                    Some(2)
                )
            );
            assert_eq!(
                le.0[1],
                (
                    1_700_000_000f64 + 123_456f64 / 1e6,
                    113,
                    b"xyz".to_vec(),
                    3,
                    Some(4)
                )
            );
        }
    }

    #[test]
    fn errors_name_the_block() {
        let mut f = shb(false);
        f.extend(epb(false, 0, 0, b"a", 1, None));
        assert_eq!(
            walk(&f, 64).1,
            Err(
                "offset 28: a packet arrived on interface 0, but there's no Interface \
                 Description Block for that interface"
                    .into()
            )
        );
        let mut f = sample(false);
        f.extend([6, 0, 0, 0, 33, 0, 0, 0, 0, 0, 0, 0]);
        let at = sample(false).len();
        assert_eq!(
            walk(&f, 64).1,
            Err(format!(
                "offset {at}: block length 33 is not a multiple of 4"
            ))
        );
    }

    #[test]
    fn any_bytes_end_without_panic() {
        let base = sample(true);
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..20_000 {
            let mut f = base.clone();
            for _ in 0..(i % 4 + 1) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % f.len();
                f[at] ^= 1 << (seed >> 60 & 7);
            }
            let cut = (seed >> 32) as usize % (f.len() + 1);
            let _ = walk(&f[..cut], 64 + i % 7);
        }
    }
}
