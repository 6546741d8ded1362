#![no_main]
use kentongan_sip::sdp::{LocalMedia, Sdp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sdp) = Sdp::parse(data) {
        let again = Sdp::parse(sdp.to_string().as_bytes());
        assert!(again.is_ok(), "re-parse failed: {again:?}");
        let local = LocalMedia::new([192, 0, 2, 1].into(), 4000);
        let _ = local.answer(&sdp);
        let _ = sdp.is_hold();
    }
});
