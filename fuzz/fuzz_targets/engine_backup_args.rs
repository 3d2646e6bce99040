#![no_main]
//! Fuzz target: see `holdfast_cli::fuzzing::engine_backup_args`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    holdfast_cli::fuzzing::engine_backup_args(data);
});
