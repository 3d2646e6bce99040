#![no_main]
//! Fuzz target: see `holdfast::fuzzing::conf`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    holdfast::fuzzing::conf(data);
});
