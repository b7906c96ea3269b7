//! libFuzzer entry for the `magnet` target; the checks live in `src/magnet.rs`
//! so that tests/fuzz_corpus.rs replays exactly what is fuzzed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sta_proto_fuzz::magnet::check(data));
