//! libFuzzer entry for the `metainfo` target; the checks live in `src/metainfo.rs`
//! so that tests/fuzz_corpus.rs replays exactly what is fuzzed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sta_proto_fuzz::metainfo::check(data));
