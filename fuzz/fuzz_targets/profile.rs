#![no_main]
//! Fuzz target: see `holdfast::fuzzing::profile`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    holdfast::fuzzing::profile(data);
});
