//! Newline framing: one JSON document per line, at most [`MAX_FRAME_LEN`] bytes a line.
//!
//! The decoder is pure (bytes in, frames out) so that it can be fuzzed and shared by every transport.

use std::fmt;

/// The longest line either side may send, newline excluded: 1 MiB.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Buffer capacity a decoder keeps between large lines.
const RETAINED_CAPACITY: usize = 16 * 1024;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A line grew past the limit before its newline arrived. The stream cannot be resynchronised.
    TooLong {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { limit } => {
                write!(f, "line longer than {limit} bytes; the connection will be closed")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits a byte stream into lines. Feed it with [`FrameDecoder::push`], drain it with
/// [`FrameDecoder::next_frame`]. Memory stays bounded by the limit plus one pushed chunk.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already searched for a newline.
    scanned: usize,
    max_len: usize,
    failed: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder with the protocol's limit, [`MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self::with_max_len(MAX_FRAME_LEN)
    }

    /// A decoder with a custom line limit (tests, embedded peers).
    pub fn with_max_len(max_len: usize) -> Self {
        Self { buf: Vec::new(), scanned: 0, max_len, failed: false }
    }

    /// Appends bytes read from the transport.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete line without its `\n` (and without a `\r` before it), `None` when more bytes are
    /// needed, or an error once a line is too long; after an error the decoder yields nothing more.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        if self.failed {
            return None;
        }
        if let Some(offset) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + offset;
            let line_len = if end > 0 && self.buf[end - 1] == b'\r' { end - 1 } else { end };
            if line_len > self.max_len {
                return Some(Err(self.fail()));
            }
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            line.truncate(line_len);
            self.scanned = 0;
            // One large line must not pin its buffer for the rest of the connection.
            if self.buf.capacity() > RETAINED_CAPACITY && self.buf.len() <= RETAINED_CAPACITY {
                self.buf.shrink_to(RETAINED_CAPACITY);
            }
            return Some(Ok(line));
        }
        self.scanned = self.buf.len();
        // One extra byte is allowed for a '\r' that may precede the newline.
        if self.buf.len() > self.max_len + 1 {
            return Some(Err(self.fail()));
        }
        None
    }

    fn fail(&mut self) -> FrameError {
        self.failed = true;
        self.buf = Vec::new();
        self.scanned = 0;
        FrameError::TooLong { limit: self.max_len }
    }
}

/// Serialises one message as a line: compact JSON and a trailing `\n`.
pub fn encode<T: serde::Serialize>(message: &T) -> serde_json::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(decoder: &mut FrameDecoder) -> Vec<Result<Vec<u8>, FrameError>> {
        std::iter::from_fn(|| decoder.next_frame()).collect()
    }

    #[test]
    fn splits_lines_and_keeps_the_partial_tail() {
        let mut d = FrameDecoder::new();
        d.push(b"{\"a\":1}\n{\"b\"");
        assert_eq!(drain(&mut d), vec![Ok(b"{\"a\":1}".to_vec())]);
        d.push(b":2}\r\n");
        assert_eq!(drain(&mut d), vec![Ok(b"{\"b\":2}".to_vec())]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn line_at_the_limit_passes_and_one_byte_more_fails() {
        let mut d = FrameDecoder::with_max_len(4);
        d.push(b"abcd\nabcde\n");
        assert_eq!(drain(&mut d), vec![Ok(b"abcd".to_vec()), Err(FrameError::TooLong { limit: 4 })]);
        d.push(b"x\n");
        assert!(d.next_frame().is_none(), "a failed decoder stays failed");
    }

    #[test]
    fn overlong_line_without_newline_fails_before_it_ends() {
        let mut d = FrameDecoder::with_max_len(8);
        d.push(&[b'x'; 6]);
        assert!(d.next_frame().is_none());
        d.push(&[b'x'; 6]);
        assert_eq!(d.next_frame(), Some(Err(FrameError::TooLong { limit: 8 })));
        assert_eq!(d.buffered(), 0, "the oversized line is not kept");
    }

    #[test]
    fn a_large_line_does_not_pin_its_buffer() {
        let mut d = FrameDecoder::new();
        let mut big = vec![b'x'; 512 * 1024];
        big.push(b'\n');
        d.push(&big);
        assert_eq!(d.next_frame().map(|f| f.map(|l| l.len())), Some(Ok(512 * 1024)));
        assert!(d.buf.capacity() <= RETAINED_CAPACITY, "capacity {}", d.buf.capacity());
    }

    #[test]
    fn encode_appends_exactly_one_newline() {
        let line = encode(&serde_json::json!({"text": "a\nb"})).unwrap();
        assert_eq!(line, b"{\"text\":\"a\\nb\"}\n");
    }
}
