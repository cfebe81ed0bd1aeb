//! The flow table's timer queue: connection timers (inactivity, SYN attempt, close, DNS
//! session) fired in the order of the Python reference's heap of `(when, serial, kind, gen)`.
//!
//! Why not one binary heap: nearly every timer is "now plus a fixed timeout", so timers of one
//! kind arrive already in order, and a heap of millions (a SYN flood makes two timers per
//! packet) pays a logarithmic push, cache misses and re-heaping for order that was there. So
//! timers go into a few ascending runs (FIFO queues; a timer joins the run whose last timer
//! is the latest not after it, as in patience sorting), and only what fits no run goes to a
//! heap. The next timer is the least of the runs' heads and the heap's top: the same total
//! order as the heap alone, so the same firing order.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use serde::{Deserialize, Serialize};

/// A timer, ordered as the Python tuple `(when, serial, kind, gen, seq)` without its last
/// item: two timers equal in the others are the same timer of the same connection, and
/// whichever fires first, the two do the same. `slot` names the connection's place in the
/// slab (with `serial`, so a reused slot never receives an older occupant's timers).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Timer {
    pub when: f64,
    pub serial: u64,
    pub slot: u32,
    pub gen: u16,
    pub kind: u8,
}

impl Timer {
    /// `self <= o`, the times compared first (the usual answer, without the full order).
    fn not_after(&self, o: &Self) -> bool {
        if self.when < o.when {
            true
        } else if self.when > o.when {
            false
        } else {
            self.order(o) != Ordering::Greater
        }
    }

    fn order(&self, o: &Self) -> Ordering {
        self.when
            .total_cmp(&o.when)
            .then(self.serial.cmp(&o.serial))
            .then(self.kind.cmp(&o.kind))
            .then(self.gen.cmp(&o.gen))
    }
}

impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        self.order(o) == Ordering::Equal
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    fn cmp(&self, o: &Self) -> Ordering {
        self.order(o)
    }
}

/// At most this many runs: enough for every steady stream of the table (the kinds times the
/// protocols' timeouts); the rest (out-of-order packet times) goes to the heap.
const MAX_RUNS: usize = 8;

/// Seconds: a timer this close after a run's last one is taken for the same stream.
const SAME_STREAM: f64 = 1.0;

/// Where the next timer is.
#[derive(Clone, Copy)]
enum Head {
    Run(usize),
    Heap,
}

/// An ascending run, and the last timer it took (kept when it empties: what it may take next
/// is decided without touching the queue).
#[derive(Debug)]
struct Run {
    last: Timer,
    queue: VecDeque<Timer>,
}

/// The timer queue: ascending runs and a heap for the rest.
#[derive(Debug)]
pub struct Timers {
    runs: Vec<Run>,
    heap: BinaryHeap<Reverse<Timer>>,
    /// When the next timer is due (infinity: none), asked before every packet.
    next: f64,
    /// By timer kind, the run it went to last.
    hints: [usize; 8],
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            runs: Vec::new(),
            heap: BinaryHeap::new(),
            next: f64::INFINITY,
            hints: [0; 8],
        }
    }
}

impl Timers {
    pub fn push(&mut self, when: f64, serial: u64, kind: u8, gen: u16, slot: u32) {
        let t = Timer {
            when,
            serial,
            gen,
            slot,
            kind,
        };
        // The run whose last timer is the latest not after `t` (best fit: each steady stream
        // keeps to its run); else a new run, or the heap. The run this kind of timer went to
        // last is tried first: when `t` follows its last timer closely it is the same stream
        // (any run whose last timer is not after `t` keeps the order; best fit only packs).
        let hint = self
            .hints
            .get(usize::from(t.kind & 7))
            .copied()
            .unwrap_or(0);
        let mut best: Option<(usize, Timer)> = self
            .runs
            .get(hint)
            .filter(|r| r.last.not_after(&t) && t.when - r.last.when < SAME_STREAM)
            .map(|r| (hint, r.last));
        if best.is_none() {
            for (i, run) in self.runs.iter().enumerate() {
                if run.last.not_after(&t) && best.is_none_or(|(_, b)| b.not_after(&run.last)) {
                    best = Some((i, run.last));
                }
            }
        }
        if let (Some((i, _)), Some(h)) = (best, self.hints.get_mut(usize::from(t.kind & 7))) {
            *h = i;
        }
        if t.when.total_cmp(&self.next) == Ordering::Less {
            self.next = t.when; // (the heap's order: total)
        }
        let room = self.runs.len() < MAX_RUNS;
        match best.and_then(|(i, _)| self.runs.get_mut(i)) {
            Some(run) => {
                run.queue.push_back(t);
                run.last = t;
            }
            None if room => self.runs.push(Run {
                last: t,
                queue: VecDeque::from([t]),
            }),
            None => self.heap.push(Reverse(t)),
        }
    }

    /// Where the least timer is.
    fn head(&self) -> Option<(Head, Timer)> {
        let mut head = self.heap.peek().map(|Reverse(t)| (Head::Heap, *t));
        for (i, run) in self.runs.iter().enumerate() {
            if let Some(t) = run.queue.front() {
                if head.as_ref().is_none_or(|(_, h)| t < h) {
                    head = Some((Head::Run(i), *t));
                }
            }
        }
        head
    }

    /// When the next timer is due.
    pub fn next_when(&self) -> Option<f64> {
        (!self.is_empty()).then_some(self.next)
    }

    fn refresh(&mut self) {
        self.next = self.head().map_or(f64::INFINITY, |(_, t)| t.when);
    }

    /// Take the least timer if it is due at `now`.
    pub fn pop_due(&mut self, now: f64) -> Option<Timer> {
        let (at, t) = self.head()?;
        if t.when > now {
            return None;
        }
        let t = match at {
            Head::Heap => self.heap.pop().map(|Reverse(t)| t),
            Head::Run(i) => self.runs.get_mut(i).and_then(|r| r.queue.pop_front()),
        };
        self.refresh();
        t
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.runs.iter().all(|r| r.queue.is_empty())
    }

    pub fn len(&self) -> usize {
        self.heap.len() + self.runs.iter().map(|r| r.queue.len()).sum::<usize>()
    }

    /// Keep only the timers `keep` accepts (the order stays).
    pub fn retain(&mut self, mut keep: impl FnMut(&Timer) -> bool) {
        for run in &mut self.runs {
            run.queue.retain(&mut keep);
        }
        self.runs.retain(|r| !r.queue.is_empty());
        self.heap.retain(|Reverse(t)| keep(t));
        self.refresh();
    }

    pub fn clear(&mut self) {
        self.runs.clear();
        self.heap.clear();
        self.next = f64::INFINITY;
    }

    /// Every timer, as the heap the exported state holds (its wire format since version 1).
    pub fn to_heap(&self) -> BinaryHeap<Reverse<Timer>> {
        let mut all = self.heap.clone();
        all.extend(
            self.runs
                .iter()
                .flat_map(|r| &r.queue)
                .copied()
                .map(Reverse),
        );
        all
    }

    /// The queue of an imported heap: its timers sorted into one run.
    pub fn from_heap(heap: BinaryHeap<Reverse<Timer>>) -> Self {
        // (ascending `Reverse`s are descending timers)
        let run: VecDeque<Timer> = heap
            .into_sorted_vec()
            .into_iter()
            .rev()
            .map(|Reverse(t)| t)
            .collect();
        let runs = match run.back().copied() {
            Some(last) => vec![Run { last, queue: run }],
            None => Vec::new(),
        };
        let mut timers = Timers {
            runs,
            ..Timers::default()
        };
        timers.refresh();
        timers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pops come out in the heap's order whatever the pushes' order: steady streams, ties,
    /// out-of-order times, more streams than runs.
    #[test]
    fn same_order_as_one_heap() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..50u64 {
            let (mut q, mut heap) = (Timers::default(), BinaryHeap::new());
            let mut now = 0.0;
            let mut fired = (Vec::new(), Vec::new());
            for i in 0..2000u64 {
                now += rnd(3) as f64 * 0.5;
                let offsets = [0.0, 5.0, 30.0, 300.0, 1.0, 2.0, 7.0, 60.0, 90.0, 11.0];
                let offset = offsets.get(rnd(2 + round % 9) as usize).copied();
                let offset = offset.unwrap_or(0.0);
                let jitter = if rnd(10) == 0 { -(rnd(4) as f64) } else { 0.0 };
                let t = Timer {
                    when: now + offset + jitter,
                    serial: i / 2,
                    slot: rnd(100) as u32,
                    gen: rnd(2) as u16,
                    kind: rnd(4) as u8,
                };
                q.push(t.when, t.serial, t.kind, t.gen, t.slot);
                heap.push(Reverse(t));
                assert_eq!(q.len(), heap.len());
                assert_eq!(q.next_when(), heap.peek().map(|Reverse(t)| t.when));
                if rnd(3) == 0 {
                    while let Some(t) = q.pop_due(now) {
                        fired.0.push(t);
                    }
                    assert!(q.next_when().is_none_or(|w| w > now));
                    while heap.peek().is_some_and(|Reverse(t)| t.when <= now) {
                        fired.1.extend(heap.pop().map(|Reverse(t)| t));
                    }
                }
                if i % 500 == 499 {
                    q.retain(|t| t.slot % 3 != 0);
                    heap.retain(|Reverse(t)| t.slot % 3 != 0);
                    q = Timers::from_heap(q.to_heap());
                }
            }
            while let Some(t) = q.pop_due(f64::INFINITY) {
                fired.0.push(t);
            }
            fired
                .1
                .extend(heap.into_sorted_vec().into_iter().rev().map(|r| r.0));
            assert_eq!(fired.0.len(), fired.1.len());
            for (a, b) in fired.0.iter().zip(&fired.1) {
                assert_eq!(a.order(b), Ordering::Equal);
            }
        }
    }
}
