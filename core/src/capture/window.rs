//! The read window both walkers keep over their input: bytes read but not yet walked, grown
//! for one long record and shrunk back after it, refilled one read at a time (a file fills it
//! at once, a pipe gives what it has, and the frames in it are walked without waiting).

use std::io::{self, Read};

/// `buf[pos..end]` is read but not yet walked; `buf[0]` is at input offset `base`.
#[derive(Debug)]
pub struct Window<R> {
    pub reader: R,
    pub buf: Vec<u8>,
    /// The usual size of `buf`.
    pub window: usize,
    pub pos: usize,
    pub end: usize,
    pub base: u64,
    /// The input ended (a read returned 0).
    pub eof: bool,
}

impl<R: Read> Window<R> {
    pub fn new(reader: R, window: usize) -> Self {
        Window {
            reader,
            buf: vec![0; window],
            window,
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
        }
    }

    /// Make `buf[pos..end]` hold at least `need` bytes; false if the input ends first.
    pub fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.end.saturating_sub(self.pos) >= need {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        // Keep the unwalked bytes, at the front of the buffer.
        self.buf.copy_within(self.pos..self.end, 0);
        self.base = self.base.saturating_add(self.pos as u64);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < need {
            self.buf.resize(need, 0); // one long record (bounded by the caller's maximum)
        } else if self.buf.len() > self.window && need <= self.window {
            self.buf.truncate(self.window); // back to the window after a long record
            self.buf.shrink_to_fit();
        }
        while self.end < need {
            let Some(room) = self.buf.get_mut(self.end..) else {
                break;
            };
            let n = read_some(&mut self.reader, room)?;
            if n == 0 {
                self.eof = true;
                break;
            }
            self.end += n;
        }
        Ok(self.end >= need)
    }
}

/// One read (retried when a signal interrupts it); 0 only at the end of the input.
pub fn read_some<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
