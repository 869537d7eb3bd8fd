//! Fuzzes the v2 binary tensor extension: the first two bytes are the
//! Inference-Header-Content-Length (little-endian), the rest is the body (a JSON header, then
//! raw tensor bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((length, body)) = data.split_first_chunk::<2>() {
        let length = u16::from_le_bytes(*length).to_string();
        modelbay_server::fuzzing::v2_body(body, Some(&length));
    }
});
