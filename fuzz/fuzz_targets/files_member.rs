#![no_main]
//! Fuzz target: see `holdfast::fuzzing::files_member`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    holdfast::fuzzing::files_member(data);
});
