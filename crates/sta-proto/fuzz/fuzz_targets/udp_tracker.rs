//! libFuzzer entry for the `udp_tracker` target; the checks live in `src/udp_tracker.rs`
//! so that tests/fuzz_corpus.rs replays exactly what is fuzzed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sta_proto_fuzz::udp_tracker::check(data));
