#![no_main]
//! Fuzz target: see `holdfast::fuzzing::archive`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    holdfast::fuzzing::archive(data);
});
