//! libFuzzer entry for the `bencode` target; the checks live in `src/bencode.rs`
//! so that tests/fuzz_corpus.rs replays exactly what is fuzzed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sta_proto_fuzz::bencode::check(data));
