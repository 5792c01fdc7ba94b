//! Docker's multiplexed stream framing ("stdcopy"): an 8-byte header
//! `[stream, 0, 0, 0, len_be32]` before each payload. Stream 0 = stdin,
//! 1 = stdout, 2 = stderr.

pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Incremental decoder: feed bytes, take complete frames.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.buf.len() < 8 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return None;
        }
        let stream = self.buf[0];
        let payload = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        Some((stream, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_split_input() {
        let mut wire = frame(1, b"hello\n");
        wire.extend(frame(2, b"oops"));
        let mut d = Decoder::default();
        d.push(&wire[..5]);
        assert!(d.next_frame().is_none());
        d.push(&wire[5..]);
        assert_eq!(d.next_frame(), Some((1, b"hello\n".to_vec())));
        assert_eq!(d.next_frame(), Some((2, b"oops".to_vec())));
        assert_eq!(d.next_frame(), None);
    }
}
