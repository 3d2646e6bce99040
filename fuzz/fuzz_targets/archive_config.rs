#![no_main]
//! Fuzz target: see `holdfast::fuzzing::archive_config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    holdfast::fuzzing::archive_config(data);
});
