//! The PyO3 boundary: `sniffer._core`. Thin wrappers only; the stages know nothing of Python.
//!
//! Every call into the core runs with the GIL released (`Python::detach`) and inside
//! `catch_unwind`: a panic is a bug, and it reaches Python as a `CoreError` naming the offset
//! and record it happened at (the panic hook installed here keeps Rust from printing it), never
//! as a crash or a traceback of its own. PyO3's `PanicException` is exported too, for the rare
//! panic outside those calls. No `unsafe` here either (the crate forbids it): PyO3's safe API
//! is the whole boundary.
//!
//! Exposed: the engine (`Engine`), the classic pcap walk (`PcapWalker`), and, for the
//! differential tests, the decode stage alone (`_Decoder`, `decode_batch`, `l4_checksum_ok`,
//! `ones_sum`) and the TCP state machine alone (`_TcpConn`).

use std::cell::RefCell;
use std::fs::File;
use std::panic::{self, AssertUnwindSafe};

use pyo3::exceptions::PyException;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::capture::pcap::{self, PcapWalker as Walker, WalkError};
use crate::decode::{self, checksum, links, Decoder, Net, Packet};
use crate::engine::{Engine, EngineSettings, Sink};
use crate::flows::conn::{ntop, ConnRecord};
use crate::flows::table::{Firing, FlowKey, TableEvent, TableSettings};
use crate::flows::tcp::{self, Event, Recorder, TcpConn, TcpSettings};

pyo3::create_exception!(
    _core,
    CoreError,
    PyException,
    "A damaged input or an I/O error: args are (offset or None, message, errno or None)."
);

thread_local! {
    /// The last panic's message and place, kept by the hook for the boundary to report.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic".to_string()
        };
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{place}")));
    }));
}

/// Run `f` catching a panic; Err(the panic's message).
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".to_string())
    })
}

fn core_error(offset: Option<u64>, message: String, errno: Option<i32>) -> PyErr {
    CoreError::new_err((offset, message, errno))
}

fn walk_error(e: WalkError) -> PyErr {
    match e {
        WalkError::Input { offset, message } => core_error(offset, message, None),
        WalkError::Io(e) => core_error(None, e.to_string(), e.raw_os_error()),
    }
}

/// One batch of frames, gathered without the GIL. The frames lie in one span of the walker's
/// buffer (`span`), which becomes the batch's bytes object with no copy in between; their
/// offsets are relative to the span's start.
#[derive(Default)]
struct Batch {
    span: (usize, usize),
    offsets: Vec<usize>,
    lengths: Vec<usize>,
    wirelens: Vec<u32>,
    ts: Vec<f64>,
    flags: Vec<u8>,
}

/// What the two walkers' `next_batch` share: the walker's state at the boundary.
trait BatchWalk {
    /// Walk up to `max_frames` frames (or `max_bytes`) into the batch; an error met after
    /// some of them goes to `pending`.
    fn fill_batch(&mut self, max_frames: usize, max_bytes: usize);
    /// Whether the last fill gave nothing at all.
    fn batch_empty(&self) -> bool;
    fn pending(&mut self) -> &mut Option<WalkError>;
    /// Set after a panic: (offset, message), said again by every later call.
    fn broken(&mut self) -> &mut Option<(u64, String)>;
    /// Where a panic happened: the input offset, and "record N" or "packet N".
    fn place(&self) -> (u64, String);
}

/// A walker's `next_batch` up to its Python result: a broken walker says so again; an error
/// met after the frames of the last batch comes now; the batch is filled without the GIL, and a
/// panic there breaks the walker and is reported where it happened; an empty batch raises the
/// error that ended it, if any.
fn next_batch<W: BatchWalk + Send>(
    py: Python<'_>,
    w: &mut W,
    max_frames: usize,
    max_bytes: usize,
) -> PyResult<()> {
    if let Some((offset, msg)) = w.broken() {
        return Err(core_error(Some(*offset), msg.clone(), None));
    }
    if let Some(e) = w.pending().take() {
        return Err(walk_error(e));
    }
    let max_frames = max_frames.max(1);
    if let Err(msg) = py.detach(|| guarded(|| w.fill_batch(max_frames, max_bytes))) {
        let (offset, at) = w.place();
        let msg = format!("internal error in the compiled core (a bug) at {at}: {msg}");
        *w.broken() = Some((offset, msg.clone()));
        return Err(core_error(Some(offset), msg, None));
    }
    if w.batch_empty() {
        if let Some(e) = w.pending().take() {
            return Err(walk_error(e));
        }
    }
    Ok(())
}

/// Classic pcap, walked by the core: `PcapWalker(path, window=1 MiB)`.
///
/// `next_batch(max_frames, max_bytes=4 MiB)` returns `(data, offsets, lengths, wirelens, ts,
/// flags)`: the frames' bytes in one bytes object (the records as read, so record headers lie
/// between the frames) and, per frame, its offset and length in it
/// (lists of int), its wire length (list of int), its time (list of float) and what it added
/// to the notes (bytes, FLAG_* bits); empty at the end. An error raises `CoreError(offset,
/// message, errno)` once the frames before it were returned. `notes()` gives the counters
/// (the Python reader's stats keys) so far.
#[pyclass(module = "sniffer._core", name = "PcapWalker")]
struct PyPcapWalker {
    walker: Walker<File>,
    batch: Batch,
    /// An error met after some frames of a batch: raised by the next call.
    pending: Option<WalkError>,
    /// A panic happened: the walk is over, every call reports it.
    broken: Option<(u64, String)>,
    /// Test hook: panic inside the next batch (checks the boundary).
    panic_next: bool,
}

impl PyPcapWalker {
    fn fill_batch(&mut self, max_frames: usize, max_bytes: usize) {
        let b = &mut self.batch;
        b.span = (0, 0);
        b.offsets.clear();
        b.lengths.clear();
        b.wirelens.clear();
        b.ts.clear();
        b.flags.clear();
        if self.panic_next {
            self.panic_next = false;
            #[allow(clippy::panic)]
            {
                panic!("panic requested by _panic_next_batch()");
            }
        }
        // A batch ends at `max_frames`, `max_bytes`, or where the frames in the buffer end:
        // the next one needs a read, which may move the buffer (and, from a pipe, wait: what
        // arrived is handed over at once). Never empty before the end of input.
        while b.offsets.is_empty()
            || (b.offsets.len() < max_frames
                && b.span.1 - b.span.0 < max_bytes
                && self.walker.frame_buffered())
        {
            match self.walker.next_frame() {
                Ok(Some(f)) => {
                    if b.offsets.is_empty() {
                        b.span.0 = f.at;
                    }
                    b.offsets.push(f.at - b.span.0);
                    b.lengths.push(f.data.len());
                    b.span.1 = f.at + f.data.len();
                    b.wirelens.push(f.wirelen);
                    b.ts.push(f.ts);
                    b.flags.push(f.flags);
                }
                Ok(None) => break,
                Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
        }
    }
}

impl BatchWalk for PyPcapWalker {
    fn fill_batch(&mut self, max_frames: usize, max_bytes: usize) {
        PyPcapWalker::fill_batch(self, max_frames, max_bytes);
    }
    fn batch_empty(&self) -> bool {
        self.batch.offsets.is_empty()
    }
    fn pending(&mut self) -> &mut Option<WalkError> {
        &mut self.pending
    }
    fn broken(&mut self) -> &mut Option<(u64, String)> {
        &mut self.broken
    }
    fn place(&self) -> (u64, String) {
        let n = self.walker.records().saturating_add(1);
        (self.walker.offset(), format!("record {n}"))
    }
}

#[pymethods]
impl PyPcapWalker {
    #[new]
    #[pyo3(signature = (path, window = pcap::DEFAULT_WINDOW))]
    fn new(py: Python<'_>, path: std::path::PathBuf, window: usize) -> PyResult<Self> {
        let opened = py.detach(|| {
            guarded(|| {
                let file = File::open(&path)?;
                Walker::with_window(file, window)
            })
        });
        match opened {
            Ok(Ok(walker)) => Ok(PyPcapWalker {
                walker,
                batch: Batch::default(),
                pending: None,
                broken: None,
                panic_next: false,
            }),
            Ok(Err(e)) => Err(walk_error(e)),
            Err(msg) => Err(core_error(
                Some(0),
                format!("internal error in the compiled core (a bug): {msg}"),
                None,
            )),
        }
    }

    /// The link type (the header's low 16 bits).
    #[getter]
    fn linktype(&self) -> u16 {
        self.walker.header().linktype
    }

    /// The snaplen in force (0 or oversized in the header means the link type's maximum).
    #[getter]
    fn snaplen(&self) -> u32 {
        self.walker.header().snaplen
    }

    /// (major, minor) of the savefile format.
    #[getter]
    fn version(&self) -> (u16, u16) {
        let h = self.walker.header();
        (h.major, h.minor)
    }

    #[getter]
    fn nanosecond(&self) -> bool {
        self.walker.header().nanosecond
    }

    /// File offset of the next record (of the failing one after an error).
    #[getter]
    fn offset(&self) -> u64 {
        self.walker.offset()
    }

    /// Records walked so far.
    #[getter]
    fn records(&self) -> u64 {
        self.walker.records()
    }

    /// The counters so far, by the Python reader's stats keys (zeros left out).
    fn notes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let n = self.walker.notes();
        let d = PyDict::new(py);
        for (k, v) in [
            ("snaplen_truncated", n.snaplen_truncated),
            ("invalid_timestamp", n.invalid_timestamp),
            ("caplen_over_snaplen", n.caplen_over_snaplen),
            ("truncated_final_record", n.truncated_final_record),
        ] {
            if v != 0 {
                d.set_item(k, v)?;
            }
        }
        Ok(d)
    }

    #[pyo3(signature = (max_frames, max_bytes = 4 << 20))]
    fn next_batch<'py>(
        &mut self,
        py: Python<'py>,
        max_frames: usize,
        max_bytes: usize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        next_batch(py, self, max_frames, max_bytes)?;
        let b = &self.batch;
        let data = self
            .walker
            .buffer()
            .get(b.span.0..b.span.1)
            .unwrap_or_default();
        (
            PyBytes::new(py, data),
            PyList::new(py, &b.offsets)?,
            PyList::new(py, &b.lengths)?,
            PyList::new(py, &b.wirelens)?,
            PyList::new(py, &b.ts)?,
            PyBytes::new(py, &b.flags),
        )
            .into_pyobject(py)
    }

    /// Test hook: make the next batch panic inside the core (the boundary must report it).
    fn _panic_next_batch(&mut self) {
        self.panic_next = true;
    }
}

// --- the decode stage (test-facing: the engine still runs the Python decoder) ----------------

/// A setting by name from a dict or an object with attributes (`sniffer.config.Settings`).
fn setting<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Ok(d) = obj.cast::<PyDict>() {
        return d.get_item(name);
    }
    Ok(obj.getattr(name).ok())
}

/// The decoder's settings (`ignore_checksums`, `ignore_checksums_nets`, `frag_timeout`,
/// `frag_max_datagrams`, `frag_max_bytes`); missing ones take Settings' defaults.
fn decode_settings(obj: &Bound<'_, PyAny>) -> PyResult<decode::Settings> {
    let mut s = decode::Settings::default();
    if let Some(v) = setting(obj, "ignore_checksums")? {
        s.ignore_checksums = v.is_truthy()?;
    }
    if let Some(v) = setting(obj, "ignore_checksums_nets")? {
        if !v.is_none() {
            for item in v.try_iter()? {
                let text = item?.str()?.to_string();
                let net = Net::parse(&text).map_err(pyo3::exceptions::PyValueError::new_err)?;
                s.ignore_checksums_nets.push(net);
            }
        }
    }
    if let Some(v) = setting(obj, "frag_timeout")? {
        s.frag_timeout = v.extract()?;
    }
    if let Some(v) = setting(obj, "frag_max_datagrams")? {
        s.frag_max_datagrams = v.extract()?;
    }
    if let Some(v) = setting(obj, "frag_max_bytes")? {
        s.frag_max_bytes = v.extract()?;
    }
    Ok(s)
}

/// Frames copied out of Python: `(ts, linktype, data, wirelen)`, the data in one buffer.
#[derive(Default)]
struct Frames {
    buf: Vec<u8>,
    items: Vec<(f64, u32, std::ops::Range<usize>, i64)>,
}

fn frames_from(frames: &Bound<'_, PyAny>) -> PyResult<Frames> {
    let mut f = Frames::default();
    for item in frames.try_iter()? {
        let (ts, linktype, data, wirelen): (f64, u32, Bound<'_, PyBytes>, i64) = item?.extract()?;
        let start = f.buf.len();
        f.buf.extend_from_slice(data.as_bytes());
        f.items.push((ts, linktype, start..f.buf.len(), wirelen));
    }
    Ok(f)
}

type Decoded = (Option<Packet>, Vec<Packet>);

fn packet_tuple<'py>(py: Python<'py>, p: &Packet, frame: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    (
        PyBytes::new(py, p.src.as_bytes()),
        PyBytes::new(py, p.dst.as_bytes()),
        p.proto,
        p.ip_len,
        PyBytes::new(py, p.l4(frame)),
        p.l4_len,
        p.ttl,
    )
        .into_pyobject(py)
}

/// Decode every frame (GIL released, panics caught): per frame, (packet or None, `more`).
fn decode_frames(py: Python<'_>, dec: &mut Decoder, frames: &Frames) -> PyResult<Vec<Decoded>> {
    let mut done = 0usize;
    let outcome = py.detach(|| {
        guarded(|| {
            let mut out = Vec::with_capacity(frames.items.len());
            for (ts, linktype, range, wirelen) in &frames.items {
                let data = frames.buf.get(range.clone()).unwrap_or_default();
                let pkt = dec.decode(*ts, *linktype, data, *wirelen);
                out.push((pkt, std::mem::take(&mut dec.more)));
                done += 1;
            }
            out
        })
    });
    outcome.map_err(|msg| {
        core_error(
            None,
            format!(
                "internal error in the compiled core (a bug) at frame {}: {msg}",
                done + 1
            ),
            None,
        )
    })
}

fn decoded_list<'py>(
    py: Python<'py>,
    frames: &Frames,
    out: &[Decoded],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for ((_, _, range, _), (pkt, more)) in frames.items.iter().zip(out) {
        let frame = frames.buf.get(range.clone()).unwrap_or_default();
        let first = match pkt {
            Some(p) => packet_tuple(py, p, frame)?.into_any(),
            None => py.None().into_bound(py),
        };
        let rest = PyList::empty(py);
        for p in more {
            rest.append(packet_tuple(py, p, frame)?)?;
        }
        list.append((first, rest))?;
    }
    Ok(list)
}

fn stats_dict<'py>(py: Python<'py>, dec: &Decoder) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in dec.stats.iter() {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// The compiled decoder, for the differential tests: `_Decoder(settings)` (a dict or a
/// `Settings`); `decode_batch(frames)` takes `(ts, linktype, data, wirelen)` tuples and gives,
/// per frame, `(packet or None, more)` with packets as the Python decoder's tuples;
/// `flush()` ends the input; `stats()` the nonzero counters by the Python names.
#[pyclass(module = "sniffer._core", name = "_Decoder")]
struct PyDecoder {
    dec: Decoder,
    broken: Option<String>,
}

impl PyDecoder {
    fn check(&self) -> PyResult<()> {
        match &self.broken {
            Some(msg) => Err(core_error(None, msg.clone(), None)),
            None => Ok(()),
        }
    }
}

#[pymethods]
impl PyDecoder {
    #[new]
    fn new(settings: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyDecoder {
            dec: Decoder::new(&decode_settings(settings)?),
            broken: None,
        })
    }

    fn decode_batch<'py>(
        &mut self,
        py: Python<'py>,
        frames: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check()?;
        let frames = frames_from(frames)?;
        match decode_frames(py, &mut self.dec, &frames) {
            Ok(out) => decoded_list(py, &frames, &out),
            Err(e) => {
                self.broken = Some(e.value(py).to_string());
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> PyResult<()> {
        self.check()?;
        self.dec.flush();
        Ok(())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.dec)
    }

    /// (pending datagrams, buffered bytes, max_datagrams, max_bytes) of the reassembler.
    fn frag_state(&self) -> (usize, usize, usize, usize) {
        let f = &self.dec.frag;
        (
            f.len(),
            f.buffered_bytes(),
            f.max_datagrams(),
            f.max_bytes(),
        )
    }
}

/// `decode_batch(settings, frames, flush=True) -> (decoded, stats)`: a fresh `_Decoder` over
/// `frames`, flushed at the end unless `flush=False`.
#[pyfunction]
#[pyo3(signature = (settings, frames, flush = true))]
fn decode_batch<'py>(
    py: Python<'py>,
    settings: &Bound<'py, PyAny>,
    frames: &Bound<'py, PyAny>,
    flush: bool,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyDict>)> {
    let mut dec = Decoder::new(&decode_settings(settings)?);
    let frames = frames_from(frames)?;
    let out = decode_frames(py, &mut dec, &frames)?;
    if flush {
        dec.flush();
    }
    Ok((decoded_list(py, &frames, &out)?, stats_dict(py, &dec)?))
}

/// `is_pcap(head)`: whether the first 4 bytes are a classic pcap magic (`read` asks before
/// the core walks a file, without importing the Python readers).
#[pyfunction]
fn is_pcap(head: &[u8]) -> bool {
    pcap::is_pcap(head)
}

/// `l4_checksum_ok(src, dst, proto, l4, l4_len)`, as `sniffer.decode.l4_checksum_ok`.
#[pyfunction]
fn l4_checksum_ok(src: &[u8], dst: &[u8], proto: u8, l4: &[u8], l4_len: usize) -> bool {
    checksum::l4_checksum_ok(src, dst, proto, l4, l4_len)
}

/// `ones_sum(data)`, as `sniffer.decode.ones_sum`.
#[pyfunction]
fn ones_sum(data: &[u8]) -> u64 {
    checksum::ones_sum(data)
}

// --- the TCP state machine (test-facing: the table is still Python's) ----------------------

/// The machine's settings from a dict or a `Settings`; missing ones take the defaults.
fn tcp_settings(obj: &Bound<'_, PyAny>) -> PyResult<TcpSettings> {
    let mut s = TcpSettings::default();
    for (name, slot) in [
        ("tcp_attempt_delay", &mut s.tcp_attempt_delay),
        ("tcp_close_delay", &mut s.tcp_close_delay),
        ("tcp_connection_linger", &mut s.tcp_connection_linger),
        ("tcp_session_timer", &mut s.tcp_session_timer),
        ("tcp_inactivity_timeout", &mut s.tcp_inactivity_timeout),
    ] {
        if let Some(v) = setting(obj, name)? {
            *slot = v.extract()?;
        }
    }
    if let Some(v) = setting(obj, "report_gaps_for_partial")? {
        s.report_gaps_for_partial = v.is_truthy()?;
    }
    Ok(s)
}

/// The compiled TCP machine alone, for the differential tests: `_TcpConn(settings, ts,
/// orig_p, resp_p)`. `segment(...)` is what the table does with a checked segment (the inlined
/// `established` or `process`; returns whether it counts for the originator); `process`,
/// `established`, `flip_roles`, `checksum_error`, `check_history`, `is_reuse`, `count`,
/// `attempt_timer` and `expire_timer` are `TCPConn`'s. `events()` drains the calls it made on its table:
/// `("weird", name)`, `("inactivity", last_time, timeout)`, `("timer", when, kind, timer_gen)`,
/// `("established", orig_p, resp_p, orig_inactive)`, `("remove",)`; `state()` is a dict.
#[pyclass(module = "sniffer._core", name = "_TcpConn")]
struct PyTcpConn {
    conn: TcpConn,
    ctx: Recorder,
    broken: Option<String>,
}

impl PyTcpConn {
    fn run<T: Send>(
        &mut self,
        py: Python<'_>,
        f: impl FnOnce(&mut TcpConn, &mut Recorder) -> T + Send,
    ) -> PyResult<T> {
        if let Some(msg) = &self.broken {
            return Err(core_error(None, msg.clone(), None));
        }
        let (conn, ctx) = (&mut self.conn, &mut self.ctx);
        match py.detach(|| guarded(|| f(conn, ctx))) {
            Ok(v) => Ok(v),
            Err(msg) => {
                let msg = format!("internal error in the compiled core (a bug): {msg}");
                self.broken = Some(msg.clone());
                Err(core_error(None, msg, None))
            }
        }
    }
}

fn endpoint_dict<'py>(py: Python<'py>, e: &tcp::EndpointView) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("is_orig", e.is_orig)?;
    d.set_item("state", e.state)?;
    d.set_item("prev_state", e.prev_state)?;
    d.set_item("start_seq", e.start_seq)?;
    d.set_item("last_seq", e.last_seq)?;
    d.set_item("ack_seq", e.ack_seq)?;
    d.set_item("seq_wraps", e.seq_wraps)?;
    d.set_item("ack_wraps", e.ack_wraps)?;
    d.set_item("FIN_cnt", e.FIN_cnt)?;
    d.set_item("RST_cnt", e.RST_cnt)?;
    d.set_item("FIN_seq", e.FIN_seq)?;
    d.set_item("did_close", e.did_close)?;
    d.set_item("hist_last_SYN", e.hist_last_SYN)?;
    d.set_item("hist_last_FIN", e.hist_last_FIN)?;
    d.set_item("hist_last_RST", e.hist_last_RST)?;
    d.set_item("chk_cnt", e.chk_cnt)?;
    d.set_item("rxmt_cnt", e.rxmt_cnt)?;
    d.set_item("win0_cnt", e.win0_cnt)?;
    d.set_item("gap_cnt", e.gap_cnt)?;
    d.set_item("last_reassem", e.last_reassem)?;
    d.set_item("trim_seq", e.trim_seq)?;
    d.set_item("blocks", &e.blocks)?;
    d.set_item("skip", e.skip)?;
    d.set_item("did_eof", e.did_eof)?;
    Ok(d)
}

#[pymethods]
impl PyTcpConn {
    #[new]
    fn new(settings: &Bound<'_, PyAny>, ts: f64, orig_p: u16, resp_p: u16) -> PyResult<Self> {
        Ok(PyTcpConn {
            conn: TcpConn::new(ts, orig_p, resp_p),
            ctx: Recorder {
                settings: tcp_settings(settings)?,
                events: Vec::new(),
            },
            broken: None,
        })
    }

    /// One of the machine's entry points (`"segment"`, `"process"` or `"established"`) for
    /// the segment `(ts, is_orig, flags, base_seq, ack_seq, window, length, caplen)`: what it
    /// returns (`segment`: whether the segment is the originator's after it; `established`:
    /// whether the fast path took it; `process`: None).
    fn call(
        &mut self,
        py: Python<'_>,
        entry: &str,
        seg: (f64, bool, u8, u32, u32, u16, u64, u64),
    ) -> PyResult<Option<bool>> {
        let (ts, is_orig, flags, base_seq, ack_seq, window, length, caplen) = seg;
        let seg = tcp::Segment {
            ts,
            is_orig,
            flags,
            base_seq,
            ack_seq,
            window,
            length,
            caplen,
        };
        match entry {
            "segment" => self.run(py, |c, x| Some(c.segment(x, &seg))),
            "process" => self.run(py, |c, x| {
                c.process(x, &seg);
                None
            }),
            "established" => self.run(py, |c, x| Some(c.established(x, &seg))),
            _ => Err(core_error(None, format!("no entry point {entry:?}"), None)),
        }
    }

    fn flip_roles(&mut self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |c, _| c.flip_roles())
    }

    fn checksum_error(&mut self, py: Python<'_>, is_orig: bool) -> PyResult<()> {
        self.run(py, |c, _| c.checksum_error(is_orig))
    }

    /// The table's own history letters (the tunnel's "X"): `check_history(mask, code)`.
    fn check_history(&mut self, py: Python<'_>, mask: u32, code: char) -> PyResult<bool> {
        self.run(py, |c, _| c.check_history(mask, code))
    }

    fn is_reuse(&mut self, py: Python<'_>, flags: u8, seq: u32) -> PyResult<bool> {
        self.run(py, |c, _| c.is_reuse(flags, seq))
    }

    fn count(&mut self, py: Python<'_>, is_orig: bool, ip_len: u64) -> PyResult<()> {
        self.run(py, |c, _| c.count(is_orig, ip_len))
    }

    fn attempt_timer(&mut self, py: Python<'_>, t: f64) -> PyResult<()> {
        self.run(py, |c, x| c.attempt_timer(x, t))
    }

    fn expire_timer(&mut self, py: Python<'_>, t: f64) -> PyResult<()> {
        self.run(py, |c, x| c.expire_timer(x, t))
    }

    /// The calls made on the table since the last `events()`.
    fn events<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for e in self.ctx.events.drain(..) {
            let item = match e {
                Event::Weird(name) => ("weird", name).into_pyobject(py)?,
                Event::Inactivity(last, t) => ("inactivity", last, t).into_pyobject(py)?,
                Event::Timer(when, kind, gen) => ("timer", when, kind, gen).into_pyobject(py)?,
                Event::Established(o, r, i) => ("established", o, r, i).into_pyobject(py)?,
                Event::Remove => ("remove",).into_pyobject(py)?,
            };
            list.append(item)?;
        }
        Ok(list)
    }

    /// Everything the machine holds, by the Python attribute names.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.conn;
        let d = PyDict::new(py);
        d.set_item("history", c.history())?;
        d.set_item("hist_seen", c.hist_seen)?;
        d.set_item("conn_state", c.conn_state())?;
        d.set_item("sizes", c.sizes())?;
        d.set_item("missed_bytes", c.missed_bytes)?;
        d.set_item("start_time", c.start_time)?;
        d.set_item("last_time", c.last_time)?;
        d.set_item("orig_p", c.orig_p)?;
        d.set_item("resp_p", c.resp_p)?;
        d.set_item("flipped", c.flipped)?;
        d.set_item("orig_pkts", c.orig_pkts)?;
        d.set_item("orig_ip_bytes", c.orig_ip_bytes)?;
        d.set_item("resp_pkts", c.resp_pkts)?;
        d.set_item("resp_ip_bytes", c.resp_ip_bytes)?;
        d.set_item("is_active", c.is_active)?;
        d.set_item("is_partial", c.is_partial)?;
        d.set_item("first_packet_seen", c.first_packet_seen)?;
        d.set_item("close_deferred", c.close_deferred)?;
        d.set_item("deferred_gen_event", c.deferred_gen_event)?;
        d.set_item("timer_gen", c.timer_gen)?;
        d.set_item("orig", endpoint_dict(py, &c.endpoint_view(true))?)?;
        d.set_item("resp", endpoint_dict(py, &c.endpoint_view(false))?)?;
        Ok(d)
    }
}

// --- the engine: frames in, events out ---------------------------------------------------

/// The table's settings from a `Settings` (or a dict); missing ones take the defaults.
fn table_settings(obj: &Bound<'_, PyAny>) -> PyResult<TableSettings> {
    let mut s = TableSettings {
        tcp: tcp_settings(obj)?,
        ..TableSettings::default()
    };
    for (name, slot) in [
        ("tcp_SYN_timeout", &mut s.tcp_syn_timeout),
        ("udp_inactivity_timeout", &mut s.udp_inactivity_timeout),
        ("icmp_inactivity_timeout", &mut s.icmp_inactivity_timeout),
        (
            "unknown_ip_inactivity_timeout",
            &mut s.unknown_ip_inactivity_timeout,
        ),
        ("dns_session_timeout", &mut s.dns_session_timeout),
        ("ip_tunnel_timeout", &mut s.ip_tunnel_timeout),
        ("long_inactivity_timeout", &mut s.long_inactivity_timeout),
    ] {
        if let Some(v) = setting(obj, name)? {
            *slot = v.extract()?;
        }
    }
    if let Some(v) = setting(obj, "max_flows")? {
        s.max_flows = v.extract()?;
    }
    if let Some(v) = setting(obj, "long_timeout_ports")? {
        s.long_timeout_ports = v
            .try_iter()?
            .map(|p| p?.extract())
            .collect::<PyResult<_>>()?;
    }
    if let Some(v) = setting(obj, "likely_server_ports")? {
        s.likely_server_ports = v
            .try_iter()?
            .map(|p| p?.extract())
            .collect::<PyResult<_>>()?;
    }
    let nets = |v: Option<Bound<'_, PyAny>>| -> PyResult<Vec<Net>> {
        let mut out = Vec::new();
        if let Some(v) = v.filter(|v| !v.is_none()) {
            for item in v.try_iter()? {
                let text = item?.str()?.to_string();
                out.push(Net::parse(&text).map_err(pyo3::exceptions::PyValueError::new_err)?);
            }
        }
        Ok(out)
    };
    s.local_nets = nets(setting(obj, "local_nets")?)?;
    let d = decode_settings(obj)?;
    s.ignore_checksums = d.ignore_checksums;
    s.ignore_checksums_nets = d.ignore_checksums_nets;
    Ok(s)
}

fn firing_obj<'py>(py: Python<'py>, f: Firing) -> PyResult<Bound<'py, PyAny>> {
    Ok(match f {
        Firing::Packet => py.None().into_bound(py),
        Firing::Timer { when, serial, kind } => (when, serial, kind).into_pyobject(py)?.into_any(),
        Firing::Flush { serial } => ("flush", serial).into_pyobject(py)?.into_any(),
    })
}

/// `("F", conn, rest)`: a record as `Engine.take_events` gives it.
fn record_item<'py>(
    py: Python<'py>,
    r: ConnRecord,
    frame: u64,
    firing: Firing,
) -> PyResult<Bound<'py, PyAny>> {
    let conn = (
        r.ts,
        r.uid,
        r.orig_h,
        r.orig_p,
        r.resp_h,
        r.resp_p,
        r.proto,
        r.ip_proto,
        r.duration,
        r.orig_bytes,
        r.resp_bytes,
        r.conn_state,
    );
    let rest = (
        r.local_orig,
        r.local_resp,
        r.missed_bytes,
        r.history,
        r.orig_pkts,
        r.orig_ip_bytes,
        r.resp_pkts,
        r.resp_ip_bytes,
        r.tunnel_parents,
        r.community_id,
        frame,
        firing_obj(py, firing)?,
    );
    Ok(("F", conn, rest).into_pyobject(py)?.into_any())
}

/// The Python table's key tuple of a flow key (raw addresses).
fn key_tuple<'py>(py: Python<'py>, k: &FlowKey) -> PyResult<Bound<'py, PyTuple>> {
    let (a, b) = (
        PyBytes::new(py, k.a.as_bytes()),
        PyBytes::new(py, k.b.as_bytes()),
    );
    Ok(match (k.one_way, k.proto) {
        (true, p) => (a, k.pa, b, k.pb, p, 1).into_pyobject(py)?,
        (false, 6) => (a, k.pa, b, k.pb).into_pyobject(py)?,
        (false, p) => (a, k.pa, b, k.pb, p).into_pyobject(py)?,
    })
}

fn addr_text(a: Option<decode::Addr>) -> Option<String> {
    a.map(|a| ntop(a.as_bytes()))
}

/// The compiled engine (sniffer/engine.py's `CoreEngine` drives it): `Engine(settings,
/// rows=None, weirds=False, shard=None, notices=False, facts=False)` (`shard`: `(n, me)`,
/// one of `read --workers n`; `notices`: new connections reported; `facts`: every packet and
/// TCP segment reported, for the detectors). Frames go in with `feed(frames)` (`(ts,
/// linktype, data, wirelen)` tuples) or, for a classic pcap walked by the core,
/// `feed_pcap(walker, max_frames)`, which never hands a frame to Python; both run with the
/// GIL released. What happened comes back in order from `take_events()`; with `rows="zeek"`
/// or `"json"` finished connections come from `take_rows()` instead, as conn.log text (Zeek
/// TSV or JSON lines, the default fields). `finish()` ends the input; `counters()` gives the stats by their keys;
/// `uid_of(key)` and `open_connections(limit, closed)` answer the detectors and `live`'s
/// dashboard.
#[pyclass(module = "sniffer._core", name = "Engine")]
struct PyEngine {
    engine: Engine,
    broken: Option<String>,
    /// Test hook: panic inside the next call (checks the boundary).
    panic_next: bool,
}

impl PyEngine {
    fn run<T: Send>(
        &mut self,
        py: Python<'_>,
        f: impl FnOnce(&mut Engine) -> T + Send,
    ) -> PyResult<T> {
        if let Some(msg) = &self.broken {
            return Err(core_error(None, msg.clone(), None));
        }
        let engine = &mut self.engine;
        let panic_next = std::mem::take(&mut self.panic_next);
        match py.detach(|| {
            guarded(|| {
                if panic_next {
                    #[allow(clippy::panic)]
                    {
                        panic!("panic requested by _panic_next_call()");
                    }
                }
                f(engine)
            })
        }) {
            Ok(v) => Ok(v),
            Err(msg) => {
                let frame = self.engine.frames;
                let msg =
                    format!("internal error in the compiled core (a bug) at frame {frame}: {msg}");
                self.broken = Some(msg.clone());
                Err(core_error(None, msg, None))
            }
        }
    }
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (settings, rows = None, weirds = false, shard = None, notices = false,
                        facts = false))]
    fn new(
        settings: &Bound<'_, PyAny>,
        rows: Option<&str>,
        weirds: bool,
        shard: Option<(u32, u32)>,
        notices: bool,
        facts: bool,
    ) -> PyResult<Self> {
        let s = EngineSettings {
            decode: decode_settings(settings)?,
            table: table_settings(settings)?,
        };
        let decode = s.decode.clone();
        let sink = match rows {
            None => Sink::Records,
            Some("zeek") => Sink::ZeekRows,
            Some("json") => Sink::JsonRows,
            Some(other) => {
                let msg = format!("rows: 'zeek' or 'json', not {other:?}");
                return Err(pyo3::exceptions::PyValueError::new_err(msg));
            }
        };
        let mut engine = Engine::new(s, sink, weirds);
        if let Some((n, me)) = shard {
            engine.set_shard(n, me, &decode);
        }
        engine.table.new_events = notices;
        engine.table.facts = facts;
        Ok(PyEngine {
            engine,
            broken: None,
            panic_next: false,
        })
    }

    /// Test hook: make the next call panic inside the core (the boundary must report it).
    fn _panic_next_call(&mut self) {
        self.panic_next = true;
    }

    /// The engine's state as bytes (the format of core/src/state.rs): another engine takes it
    /// over with `Engine.import_state` and, fed the frames after, gives what this one would
    /// have. Events and rows not yet taken stay this engine's.
    fn export_state<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self
            .run(py, |e| e.export_state())?
            .map_err(pyo3::exceptions::PyValueError::new_err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// `Engine.import_state(settings, data, rows=None, weirds=False, shard=None,
    /// notices=False, facts=False)`: a new engine, as `Engine(...)` with the same arguments,
    /// that takes over the state `data` another exported. ValueError when `data` is not a
    /// state, or is another shard's.
    #[staticmethod]
    #[pyo3(signature = (settings, data, rows = None, weirds = false, shard = None,
                        notices = false, facts = false))]
    #[allow(clippy::too_many_arguments)]
    fn import_state(
        py: Python<'_>,
        settings: &Bound<'_, PyAny>,
        data: &[u8],
        rows: Option<&str>,
        weirds: bool,
        shard: Option<(u32, u32)>,
        notices: bool,
        facts: bool,
    ) -> PyResult<Self> {
        let mut me = Self::new(settings, rows, weirds, shard, notices, facts)?;
        let engine = &mut me.engine;
        match py.detach(|| guarded(|| engine.import_state(data))) {
            Ok(Ok(())) => Ok(me),
            Ok(Err(msg)) => Err(pyo3::exceptions::PyValueError::new_err(msg)),
            Err(msg) => {
                let msg =
                    format!("internal error in the compiled core (a bug) importing a state: {msg}");
                Err(core_error(None, msg, None))
            }
        }
    }

    /// Network time: the latest frame's time.
    #[getter]
    fn network_time(&self) -> f64 {
        self.engine.table.network_time
    }

    /// Frames fed since the last `finish`.
    #[getter]
    fn frames(&self) -> u64 {
        self.engine.frames
    }

    /// Connections open now.
    #[getter]
    fn open_count(&self) -> usize {
        self.engine.table.len()
    }

    fn feed(&mut self, py: Python<'_>, frames: &Bound<'_, PyAny>) -> PyResult<usize> {
        let frames = frames_from(frames)?;
        self.run(py, |e| {
            for (ts, linktype, range, wirelen) in &frames.items {
                let data = frames.buf.get(range.clone()).unwrap_or_default();
                e.feed(*ts, *linktype, data, *wirelen);
            }
            frames.items.len()
        })
    }

    /// Walk up to `max_frames` frames of `walker` into the engine (fewer when the rows not
    /// yet taken pass 256 KiB: take them, then call again); the number walked (0 at the end).
    /// A damaged record raises CoreError once the frames before it are in.
    fn feed_pcap(
        &mut self,
        py: Python<'_>,
        mut walker: PyRefMut<'_, PyPcapWalker>,
        max_frames: usize,
    ) -> PyResult<usize> {
        let w = &mut walker.walker;
        match self.run(py, |e| e.feed_pcap(w, max_frames.max(1)))? {
            Ok(n) => Ok(n),
            Err(e) => Err(walk_error(e)),
        }
    }

    /// The end of the input: every open connection ends. With `limit`, at most that many in
    /// this call, and True while some remain: call again, taking the rows or events between
    /// calls (they never pile up), until False.
    #[pyo3(signature = (limit=None))]
    fn finish(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<bool> {
        self.run(py, |e| e.finish_some(limit.unwrap_or(usize::MAX)))
    }

    /// The rows written since the last call, as UTF-8 bytes: the output file takes them as
    /// they are (a str would cost a scan of every byte, then an encoding back).
    fn take_rows<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        // (cleared, not taken: the buffer keeps its capacity for the next batch)
        let rows = self.engine.rows();
        let text = PyBytes::new(py, rows.as_bytes());
        rows.clear();
        text
    }

    /// What happened since the last call, in order, as tuples tagged by kind:
    /// `("F", conn, rest)`: a finished record (`conn` the first 12 `Conn` fields, `rest` the
    /// other 10, then the frame and what ended it); `("W", ts, name, source, uid, orig_h,
    /// orig_p, resp_h, resp_p)`: a weird; `("N", ts, proto, orig_h, orig_p, resp_h, resp_p,
    /// uid, frame)`: a new connection (raw addresses); with `facts`, `("P", ts, (src, dst,
    /// proto, ip_len, l4, l4_len, ttl), encap)`: a packet as the Python decoder gives it, with
    /// its tunnels (`encap`: None or tuples `(type, uid, orig_h, orig_p, resp_h, resp_p)`), and
    /// `("T", ts, conn, is_orig, flags, seq, ack, win, payload, ttl)`: a TCP segment, `conn`
    /// `(uid, key, orig_h, orig_p, resp_h, resp_p, orig_pkts, resp_pkts)` as it stands after it.
    fn take_events<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for ev in self.engine.take_events() {
            let item = match ev {
                TableEvent::Finished { rec, frame, firing } => {
                    record_item(py, *rec, frame, firing)?
                }
                TableEvent::Weird(e) => (
                    "W",
                    e.ts,
                    e.name.into_owned(),
                    if e.decode { "decode" } else { "flows" },
                    e.uid,
                    addr_text(e.orig_h),
                    e.orig_p,
                    addr_text(e.resp_h),
                    e.resp_p,
                )
                    .into_pyobject(py)?
                    .into_any(),
                TableEvent::New {
                    ts,
                    proto,
                    orig_h,
                    orig_p,
                    resp_h,
                    resp_p,
                    uid,
                    frame,
                } => (
                    "N",
                    ts,
                    proto,
                    PyBytes::new(py, orig_h.as_bytes()),
                    orig_p,
                    PyBytes::new(py, resp_h.as_bytes()),
                    resp_p,
                    uid,
                    frame,
                )
                    .into_pyobject(py)?
                    .into_any(),
                TableEvent::Packet(p) => {
                    let pkt = (
                        PyBytes::new(py, p.src.as_bytes()),
                        PyBytes::new(py, p.dst.as_bytes()),
                        p.proto,
                        p.ip_len,
                        PyBytes::new(py, &p.l4),
                        p.l4_len,
                        p.ttl,
                    );
                    let encap = match &p.encap {
                        None => py.None().into_bound(py),
                        Some(stack) => {
                            let mut items = Vec::with_capacity(stack.len());
                            for e in stack {
                                items.push((
                                    e.kind.name(),
                                    e.uid.clone(),
                                    PyBytes::new(py, e.orig_h.as_bytes()),
                                    e.orig_p,
                                    PyBytes::new(py, e.resp_h.as_bytes()),
                                    e.resp_p,
                                ));
                            }
                            PyTuple::new(py, items)?.into_any()
                        }
                    };
                    ("P", p.ts, pkt, encap).into_pyobject(py)?.into_any()
                }
                TableEvent::Segment(t) => {
                    let conn = (
                        t.uid,
                        key_tuple(py, &t.key)?,
                        PyBytes::new(py, t.orig_h.as_bytes()),
                        t.orig_p,
                        PyBytes::new(py, t.resp_h.as_bytes()),
                        t.resp_p,
                        t.orig_pkts,
                        t.resp_pkts,
                    );
                    (
                        "T",
                        t.ts,
                        conn,
                        t.is_orig,
                        t.flags,
                        t.seq,
                        t.ack,
                        t.win,
                        PyBytes::new(py, &t.payload),
                        t.ttl,
                    )
                        .into_pyobject(py)?
                        .into_any()
                }
            };
            list.append(item)?;
        }
        Ok(list)
    }

    /// The uid of the open connection with the Python table's key `key` (a tuple: TCP
    /// `(a, pa, b, pb)`, UDP with 17 after), or None.
    fn uid_of(&self, key: &Bound<'_, PyTuple>) -> PyResult<Option<String>> {
        let parts: Vec<Bound<'_, PyAny>> = key.iter().collect();
        let addr = |i: usize| -> PyResult<decode::Addr> {
            let b: Vec<u8> = parts
                .get(i)
                .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("short key"))?
                .extract()?;
            Ok(decode::Addr::from_slice(&b))
        };
        let port = |i: usize| -> PyResult<u16> {
            parts
                .get(i)
                .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("short key"))?
                .extract()
        };
        let proto = match parts.len() {
            4 => 6,
            5 => port(4)?.try_into().unwrap_or(0),
            _ => return Ok(None),
        };
        let k = FlowKey {
            a: addr(0)?,
            pa: port(1)?,
            b: addr(2)?,
            pb: port(3)?,
            proto,
            one_way: false,
        };
        Ok(self.engine.table.uid_of(&k))
    }

    /// `live`'s dashboard: `(active, closing, busiest)`: how many open connections are
    /// active and how many are over (conn_state in `closed`), and the records so far (as in
    /// `take_events`) of the `limit` busiest active ones.
    fn open_connections<'py>(
        &mut self,
        py: Python<'py>,
        limit: usize,
        closed: Vec<String>,
    ) -> PyResult<(usize, usize, Bound<'py, PyList>)> {
        let closed: Vec<&str> = closed.iter().map(String::as_str).collect();
        let (active, closing, open) = self.engine.table.open_connections(limit, &closed);
        let list = PyList::empty(py);
        for o in open {
            list.append(record_item(py, o.rec, 0, Firing::Packet)?)?;
        }
        Ok((active, closing, list))
    }

    /// Every nonzero counter by its stats key.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.engine.counters() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
}

// --- pcapng, walked by the core (its Custom Blocks go back to Python raw) -------------------

/// One batch of a pcapng walk: frames as in `Batch`, plus each frame's link type and
/// direction, and the blocks Python handles itself, in order.
#[derive(Default)]
struct NgBatch {
    span: (usize, usize),
    offsets: Vec<usize>,
    lengths: Vec<usize>,
    wirelens: Vec<u32>,
    ts: Vec<f64>,
    flags: Vec<u8>,
    linktypes: Vec<u16>,
    directions: Vec<Option<u8>>,
    /// (frames of the batch before it, the whole Custom Block or None for an unknown block,
    /// big-endian, the stream's last packet time)
    rare: Vec<(usize, Option<Vec<u8>>, bool, f64)>,
}

/// pcapng, walked by the core: `PcapngWalker(path, window=1 MiB, customs=False,
/// directions=False)`.
///
/// `next_batch(max_frames, max_bytes=4 MiB)` returns `(data, offsets, lengths, wirelens, ts,
/// flags, linktypes, directions, rare)`: the frames as `PcapWalker` gives them (`flags` with
/// this class's FLAG_* bits too), each frame's link type, its EPB direction (None where the
/// file says none; an empty list unless `directions`), and `rare`: `(index, block, big_endian,
/// last_ts)` for each block the Python side handles, met before frame `index` of the batch:
/// a Custom Block whole (only with `customs`), or None for a block of an unknown type. Empty
/// lists at the end. Errors as `PcapWalker`'s.
#[pyclass(module = "sniffer._core", name = "PcapngWalker")]
struct PyPcapngWalker {
    walker: crate::capture::pcapng::PcapngWalker<File>,
    batch: NgBatch,
    pending: Option<WalkError>,
    broken: Option<(u64, String)>,
    directions: bool,
}

impl PyPcapngWalker {
    fn fill_batch(&mut self, max_frames: usize, max_bytes: usize) {
        use crate::capture::pcapng::Block;
        let b = &mut self.batch;
        b.span = (0, 0);
        b.offsets.clear();
        b.lengths.clear();
        b.wirelens.clear();
        b.ts.clear();
        b.flags.clear();
        b.linktypes.clear();
        b.directions.clear();
        b.rare.clear();
        // As PcapWalker's: once the batch holds anything, it ends where the next block needs
        // a read (which may move the buffer its frames lie in).
        loop {
            if (!b.offsets.is_empty() || !b.rare.is_empty())
                && (b.offsets.len() >= max_frames
                    || b.rare.len() >= max_frames
                    || b.span.1 - b.span.0 >= max_bytes
                    || !self.walker.block_buffered())
            {
                break;
            }
            match self.walker.next_block() {
                Ok(Some(Block::Frame(f))) => {
                    if b.offsets.is_empty() {
                        b.span.0 = f.at;
                    }
                    b.offsets.push(f.at - b.span.0);
                    b.lengths.push(f.data.len());
                    b.span.1 = f.at + f.data.len();
                    b.wirelens.push(f.wirelen);
                    b.ts.push(f.ts);
                    b.flags.push(f.flags);
                    b.linktypes.push(f.linktype);
                    if self.directions {
                        b.directions.push(f.direction);
                    }
                }
                Ok(Some(Block::Custom {
                    block,
                    big_endian,
                    last_ts,
                    ..
                })) => b
                    .rare
                    .push((b.offsets.len(), Some(block.to_vec()), big_endian, last_ts)),
                Ok(Some(Block::Unknown { .. })) => {
                    b.rare.push((b.offsets.len(), None, false, 0.0));
                }
                Ok(Some(Block::Other)) => {}
                Ok(None) => break,
                Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
        }
    }
}

impl BatchWalk for PyPcapngWalker {
    fn fill_batch(&mut self, max_frames: usize, max_bytes: usize) {
        PyPcapngWalker::fill_batch(self, max_frames, max_bytes);
    }
    fn batch_empty(&self) -> bool {
        self.batch.offsets.is_empty() && self.batch.rare.is_empty()
    }
    fn pending(&mut self) -> &mut Option<WalkError> {
        &mut self.pending
    }
    fn broken(&mut self) -> &mut Option<(u64, String)> {
        &mut self.broken
    }
    fn place(&self) -> (u64, String) {
        let n = self.walker.packets().saturating_add(1);
        (self.walker.offset(), format!("packet {n}"))
    }
}

#[pymethods]
impl PyPcapngWalker {
    #[classattr]
    const FLAG_CAPLEN_OVER_SNAPLEN: u8 = pcap::FLAG_CAPLEN_OVER_SNAPLEN;
    #[classattr]
    const FLAG_SNAPLEN_TRUNCATED: u8 = pcap::FLAG_SNAPLEN_TRUNCATED;
    #[classattr]
    const FLAG_SPB_NO_TIMESTAMP: u8 = crate::capture::pcapng::FLAG_SPB_NO_TIMESTAMP;
    #[classattr]
    const FLAG_OBSOLETE_PACKET_BLOCK: u8 = crate::capture::pcapng::FLAG_OBSOLETE_PACKET_BLOCK;

    #[new]
    #[pyo3(signature = (path, window = pcap::DEFAULT_WINDOW, customs = false, directions = false))]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        window: usize,
        customs: bool,
        directions: bool,
    ) -> PyResult<Self> {
        match py.detach(|| File::open(&path)) {
            Ok(file) => Ok(PyPcapngWalker {
                walker: crate::capture::pcapng::PcapngWalker::with_window(
                    file, window, customs, directions,
                ),
                batch: NgBatch::default(),
                pending: None,
                broken: None,
                directions,
            }),
            Err(e) => Err(walk_error(WalkError::Io(e))),
        }
    }

    /// File offset of the next block (of the failing one after an error).
    #[getter]
    fn offset(&self) -> u64 {
        self.walker.offset()
    }

    /// Packets walked so far.
    #[getter]
    fn packets(&self) -> u64 {
        self.walker.packets()
    }

    /// The counters that belong to no frame, by the Python reader's stats keys (zeros left
    /// out).
    fn notes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let n = self.walker.notes().truncated_final_record;
        if n != 0 {
            d.set_item("truncated_final_record", n)?;
        }
        Ok(d)
    }

    #[pyo3(signature = (max_frames, max_bytes = 4 << 20))]
    fn next_batch<'py>(
        &mut self,
        py: Python<'py>,
        max_frames: usize,
        max_bytes: usize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        next_batch(py, self, max_frames, max_bytes)?;
        let b = &self.batch;
        let data = self
            .walker
            .buffer()
            .get(b.span.0..b.span.1)
            .unwrap_or_default();
        let rare = PyList::empty(py);
        for (index, block, big_endian, last_ts) in &b.rare {
            let block = block.as_ref().map(|v| PyBytes::new(py, v));
            rare.append((index, block, big_endian, last_ts))?;
        }
        (
            PyBytes::new(py, data),
            PyList::new(py, &b.offsets)?,
            PyList::new(py, &b.lengths)?,
            PyList::new(py, &b.wirelens)?,
            PyList::new(py, &b.ts)?,
            PyBytes::new(py, &b.flags),
            PyList::new(py, &b.linktypes)?,
            PyList::new(py, &b.directions)?,
            rare,
        )
            .into_pyobject(py)
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    install_panic_hook();
    let py = m.py();
    m.add_class::<PyPcapWalker>()?;
    m.add_class::<PyPcapngWalker>()?;
    m.add("CoreError", py.get_type::<CoreError>())?;
    m.add("PanicException", py.get_type::<PanicException>())?;
    m.add("FLAG_CAPLEN_OVER_SNAPLEN", pcap::FLAG_CAPLEN_OVER_SNAPLEN)?;
    m.add("FLAG_SNAPLEN_TRUNCATED", pcap::FLAG_SNAPLEN_TRUNCATED)?;
    m.add("FLAG_INVALID_TIMESTAMP", pcap::FLAG_INVALID_TIMESTAMP)?;
    m.add("DEFAULT_WINDOW", pcap::DEFAULT_WINDOW)?;
    m.add_class::<PyDecoder>()?;
    m.add_class::<PyTcpConn>()?;
    m.add_class::<PyEngine>()?;
    m.add_function(wrap_pyfunction!(decode_batch, m)?)?;
    m.add_function(wrap_pyfunction!(l4_checksum_ok, m)?)?;
    m.add_function(wrap_pyfunction!(is_pcap, m)?)?;
    m.add_function(wrap_pyfunction!(ones_sum, m)?)?;
    m.add("DECODE_LINKTYPES", links::LINKTYPES.to_vec())?;
    let ethertypes: Vec<u32> = (0..=u16::MAX)
        .filter(|e| links::ethertype_fn(*e).is_some())
        .map(u32::from)
        .collect();
    m.add("DECODE_ETHERTYPES", ethertypes)?;
    m.add(
        "DECODE_UNSUPPORTED_ETHERTYPES",
        links::UNSUPPORTED_ETHERTYPES.to_vec(),
    )?;
    Ok(())
}
