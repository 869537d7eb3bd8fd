//! Fuzzes the v2 JSON request decoder (the typed `data` visitor included) and request
//! validation: never a panic, bounded allocation (libFuzzer's -malloc_limit_mb), and every
//! accepted body survives a JSON round trip unchanged (checked in `v2_body`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelbay_server::fuzzing::v2_body(data, None);
});
