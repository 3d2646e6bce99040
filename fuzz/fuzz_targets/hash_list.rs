#![no_main]
//! Fuzz target: see `holdfast::fuzzing::hash_list`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    holdfast::fuzzing::hash_list(data);
});
