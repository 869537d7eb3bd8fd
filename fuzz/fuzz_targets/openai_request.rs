//! Fuzzes OpenAI request parsing: the first byte picks chat (0), completions (1) or
//! embeddings (2), the rest is the body. Accepted chats are rendered with a ChatML template,
//! whose turns must come from the template alone (checked in `openai_body`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((kind, body)) = data.split_first() {
        modelbay_server::fuzzing::openai_body(*kind, body);
    }
});
