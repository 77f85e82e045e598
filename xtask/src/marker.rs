//! The guest reports its command's exit status as a console line
//! `SANDBOX_AGENT_VM_EXIT=<status> <nonce>`; this filter streams the console through, removes
//! that line and records the status. The nonce (fresh per run) keeps output that merely contains
//! the marker text from being taken for it.

use std::io::{self, Write};

pub const MARKER: &[u8] = b"SANDBOX_AGENT_VM_EXIT=";
const MAX_TAIL: usize = 128;

pub struct ConsoleFilter<W: Write> {
    out: W,
    nonce: String,
    /// Recognise the marker anywhere (batch mode) or only at the start of a line (interactive).
    anywhere: bool,
    /// Turn the console's `\r\n` into `\n` (batch mode, when output goes to files or pipes).
    strip_cr: bool,
    pending: Vec<u8>,
    tail: Option<Vec<u8>>,
    held_cr: bool,
    at_line_start: bool,
    status: Option<i32>,
    capture: Option<Vec<u8>>,
    /// Set once writing to `out` failed (e.g. a closed pipe): keep parsing, stop writing.
    out_broken: bool,
}

impl<W: Write> ConsoleFilter<W> {
    pub fn new(out: W, nonce: &str, interactive: bool, capture: bool) -> Self {
        Self {
            out,
            nonce: nonce.to_owned(),
            anywhere: !interactive,
            strip_cr: !interactive,
            pending: Vec::new(),
            tail: None,
            held_cr: false,
            at_line_start: true,
            status: None,
            capture: capture.then(Vec::new),
            out_broken: false,
        }
    }

    /// Feeds console bytes; output after the marker (the guest powering off) is dropped.
    pub fn feed(&mut self, data: &[u8]) -> io::Result<()> {
        for &b in data {
            if self.status.is_some() {
                break;
            }
            self.byte(b)?;
        }
        self.flush();
        Ok(())
    }

    /// Flushes what is held back; returns the reported status and the captured output.
    pub fn finish(mut self) -> io::Result<(Option<i32>, Vec<u8>)> {
        if self.status.is_none() {
            let pending = std::mem::take(&mut self.pending);
            self.emit(&pending)?;
            if let Some(tail) = self.tail.take() {
                self.emit(MARKER)?;
                self.emit(&tail)?;
            }
        }
        if !self.at_line_start {
            self.emit(b"\n")?;
        }
        self.flush();
        Ok((self.status, self.capture.unwrap_or_default()))
    }

    fn byte(&mut self, b: u8) -> io::Result<()> {
        if let Some(tail) = self.tail.as_mut() {
            if b != b'\n' && tail.len() < MAX_TAIL {
                tail.push(b);
                return Ok(());
            }
            let tail = self.tail.take().unwrap_or_default();
            if b == b'\n' {
                if let Some(status) = self.parse_tail(&tail) {
                    self.status = Some(status);
                    if !self.at_line_start {
                        self.emit(b"\n")?;
                    }
                    return Ok(());
                }
            }
            self.emit(MARKER)?;
            self.emit(&tail)?;
            return self.emit(&[b]);
        }
        if !self.pending.is_empty() || self.anywhere || self.at_line_start {
            self.pending.push(b);
            if MARKER.starts_with(&self.pending) {
                if self.pending.len() == MARKER.len() {
                    self.pending.clear();
                    self.tail = Some(Vec::new());
                }
                return Ok(());
            }
            self.pending.pop();
            let pending = std::mem::take(&mut self.pending);
            self.emit(&pending)?;
            if (self.anywhere || self.at_line_start) && b == MARKER[0] {
                self.pending.push(b);
                return Ok(());
            }
        }
        self.emit(&[b])
    }

    fn parse_tail(&self, tail: &[u8]) -> Option<i32> {
        let text = std::str::from_utf8(tail).ok()?.trim_end_matches('\r');
        let (status, nonce) = text.split_once(' ')?;
        (nonce == self.nonce).then_some(())?;
        status.parse().ok()
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &b in bytes {
            if self.strip_cr {
                if self.held_cr {
                    self.held_cr = false;
                    if b != b'\n' {
                        self.write(b'\r')?;
                    }
                }
                if b == b'\r' {
                    self.held_cr = true;
                    continue;
                }
            }
            self.write(b)?;
        }
        Ok(())
    }

    fn write(&mut self, b: u8) -> io::Result<()> {
        self.at_line_start = b == b'\n';
        if let Some(c) = self.capture.as_mut() {
            c.push(b);
        }
        if !self.out_broken && self.out.write_all(&[b]).is_err() {
            self.out_broken = true;
        }
        Ok(())
    }

    fn flush(&mut self) {
        if !self.out_broken && self.out.flush().is_err() {
            self.out_broken = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(interactive: bool, chunks: &[&[u8]]) -> (String, Option<i32>) {
        let mut out = Vec::new();
        let mut f = ConsoleFilter::new(&mut out, "n0nce", interactive, true);
        for c in chunks {
            f.feed(c).unwrap();
        }
        let (status, captured) = f.finish().unwrap();
        let shown = String::from_utf8(out).unwrap();
        assert_eq!(shown.as_bytes(), captured);
        (shown, status)
    }

    #[test]
    fn batch_marker_after_full_line() {
        let (out, st) = run(
            false,
            &[b"hello\r\nSANDBOX_AGENT_VM_EXIT=3 n0nce\r\nreboot: Power down\r\n"],
        );
        assert_eq!(out, "hello\n");
        assert_eq!(st, Some(3));
    }

    #[test]
    fn batch_marker_mid_line_and_split() {
        let (out, st) = run(
            false,
            &[
                b"no newline",
                b"SANDBOX_AG",
                b"ENT_VM_EXIT=0 n0",
                b"nce\r\n",
            ],
        );
        assert_eq!(out, "no newline\n");
        assert_eq!(st, Some(0));
    }

    #[test]
    fn wrong_nonce_or_shape_is_output() {
        let (out, st) = run(false, &[b"SANDBOX_AGENT_VM_EXIT=$rc x\nSANDBOX!\n"]);
        assert_eq!(out, "SANDBOX_AGENT_VM_EXIT=$rc x\nSANDBOX!\n");
        assert_eq!(st, None);
    }

    #[test]
    fn truncated_marker_is_output() {
        let (out, st) = run(false, &[b"ok\nSANDBOX_AGENT_VM_EX"]);
        assert_eq!(out, "ok\nSANDBOX_AGENT_VM_EX\n");
        assert_eq!(st, None);
    }

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn closed_output_still_yields_status() {
        let mut f = ConsoleFilter::new(Closed, "n0nce", false, true);
        f.feed(b"test result: ok.\nSANDBOX_AGENT_VM_EXIT=0 n0nce\n")
            .unwrap();
        let (status, captured) = f.finish().unwrap();
        assert_eq!(status, Some(0));
        assert_eq!(captured, b"test result: ok.\n");
    }

    #[test]
    fn interactive_only_at_line_start_and_keeps_cr() {
        let (out, st) = run(
            true,
            &[b"# echo S\r\nS\r\n# exit 4\r\n\r\nSANDBOX_AGENT_VM_EXIT=4 n0nce\r\n"],
        );
        assert_eq!(out, "# echo S\r\nS\r\n# exit 4\r\n\r\n");
        assert_eq!(st, Some(4));
        let (out, st) = run(true, &[b"x SANDBOX_AGENT_VM_EXIT=4 n0nce\r\n"]);
        assert_eq!(out, "x SANDBOX_AGENT_VM_EXIT=4 n0nce\r\n");
        assert_eq!(st, None);
    }
}
