#![no_main]
//! Fuzz target: see `holdfast_cli::fuzzing::holdfast_args`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    holdfast_cli::fuzzing::holdfast_args(data);
});
