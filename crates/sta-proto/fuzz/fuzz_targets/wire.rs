//! libFuzzer entry for the `wire` target; the checks live in `src/wire.rs`
//! so that tests/fuzz_corpus.rs replays exactly what is fuzzed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sta_proto_fuzz::wire::check(data));
