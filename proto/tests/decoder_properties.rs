//! Property tests for the frame decoder and the request parser: the fuzz targets that run on stable Rust.

use codexd_proto::{FrameDecoder, FrameError, Request};
use proptest::prelude::*;

/// Feeds `input` to a decoder in the given chunk sizes and collects every frame.
fn decode_in_chunks(input: &[u8], chunks: &[usize], max_len: usize) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut decoder = FrameDecoder::with_max_len(max_len);
    let mut frames = Vec::new();
    let mut rest = input;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = decoder.next_frame() {
            frames.push(frame);
        }
        assert!(decoder.buffered() <= max_len + 1 + n, "decoder buffered more than limit + one chunk");
    }
    frames
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn chunking_never_changes_the_frames(
        input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..600),
        chunks in proptest::collection::vec(1usize..64, 1..8),
        max_len in 1usize..128,
    ) {
        let whole = decode_in_chunks(&input, &[input.len().max(1)], max_len);
        let pieces = decode_in_chunks(&input, &chunks, max_len);
        // An over-long line may be caught before its newline when it arrives in pieces, but the frames before
        // it, and whether the stream fails at all, never depend on chunking.
        let ok = |v: &Vec<Result<Vec<u8>, FrameError>>| v.iter().take_while(|f| f.is_ok()).cloned().collect::<Vec<_>>();
        prop_assert_eq!(ok(&whole), ok(&pieces));
        prop_assert_eq!(whole.iter().any(Result::is_err), pieces.iter().any(Result::is_err));
    }

    #[test]
    fn frames_never_exceed_the_limit_nor_contain_newlines(
        input in proptest::collection::vec(any::<u8>(), 0..2000),
        max_len in 1usize..256,
    ) {
        for frame in decode_in_chunks(&input, &[7, 13, 1], max_len).into_iter().flatten() {
            prop_assert!(frame.len() <= max_len);
            prop_assert!(!frame.contains(&b'\n'));
        }
    }

    #[test]
    fn request_parser_never_panics_on_bytes(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Request::parse(&input);
    }

    #[test]
    fn request_parser_never_panics_on_json(value in arb_json()) {
        let text = serde_json::to_vec(&value).unwrap();
        match Request::parse(&text) {
            Ok(request) => prop_assert!(!request.method.is_empty() || value["method"] == "" ),
            Err(rejected) => prop_assert!([-32700, -32600].contains(&rejected.error.code)),
        }
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        prop_oneof![Just("id".to_owned()), Just("method".to_owned()), Just("2.0".to_owned()), ".{0,8}"]
            .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("method".to_owned()),
                    Just("jsonrpc".to_owned()),
                    Just("params".to_owned()),
                    ".{0,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
