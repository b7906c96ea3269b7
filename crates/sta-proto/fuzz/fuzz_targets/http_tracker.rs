//! libFuzzer entry for the `http_tracker` target; the checks live in `src/http_tracker.rs`
//! so that tests/fuzz_corpus.rs replays exactly what is fuzzed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sta_proto_fuzz::http_tracker::check(data));
