//! Fuzzes the frame decoder and the request parser together, as the daemon uses them: arbitrary bytes in
//! arbitrary chunks must never panic, never yield a frame over the limit, and parse to a request or an error
//! reply with a JSON-RPC code.
#![no_main]

use codexd_proto::{FrameDecoder, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_seed, bytes)) = data.split_first() else { return };
    let chunk = usize::from(chunk_seed % 64) + 1;
    let mut decoder = FrameDecoder::with_max_len(4096);
    for piece in bytes.chunks(chunk) {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame() {
            let Ok(frame) = frame else { return };
            assert!(frame.len() <= 4096);
            if let Err(rejected) = Request::parse(&frame) {
                assert!(rejected.error.code == -32700 || rejected.error.code == -32600);
            }
        }
        assert!(decoder.buffered() <= 4096 + 1 + chunk);
    }
});
