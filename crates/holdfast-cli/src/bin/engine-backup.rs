//! `engine-backup`: oVirt's engine-backup command line over holdfast.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    holdfast_cli::engine_backup::main(&args, &holdfast_cli::engine_backup::hiargs::RealOutside)
}
