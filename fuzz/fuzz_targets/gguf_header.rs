//! Fuzzes the GGUF header reader on arbitrary bytes: it must refuse or accept, never panic, and
//! never allocate more than a bounded multiple of the input (libFuzzer's -rss_limit_mb and
//! -malloc_limit_mb catch a huge declared length that is trusted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelbay_engines::gguf::{self, GgufHeader};

fuzz_target!(|data: &[u8]| {
    let _ = gguf::sniff(data);
    if let Ok(header) = GgufHeader::parse(data) {
        assert!(gguf::sniff(data), "accepted a file without the GGUF magic");
        if let Ok(details) = header.details() {
            assert_eq!(details.gguf_version, header.version);
            assert_eq!(details.parameters, header.parameters);
        }
    }
});
