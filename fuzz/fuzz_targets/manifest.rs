#![no_main]
//! Fuzz target: see `holdfast::fuzzing::manifest`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    holdfast::fuzzing::manifest(data);
});
