#![no_main]
use kentongan_sip::{Message, StreamDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data.to_vec()) {
        // Whatever parses must serialize to something that parses again.
        let again = Message::parse(m.to_bytes());
        assert!(again.is_ok(), "re-parse failed: {again:?}");
        let h = m.headers();
        let _ = (h.vias(), h.from(), h.to(), h.cseq(), h.contact(), h.routes());
    }
    let mut d = StreamDecoder::default();
    d.extend(data);
    while let Some(Ok(_)) = d.next_message() {}
});
