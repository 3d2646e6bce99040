// Temporary dispatch so the schema command can be built and tried on the `schema`
// branch; the lead wires `holdfast schema` into the real command line.
mod schema_cmd;

use clap::Parser;

#[derive(clap::Parser, Debug)]
#[command(name = "holdfast")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Versioned schema upgrades with a schema_version history.
    Schema(schema_cmd::SchemaArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schema(args) => schema_cmd::run(args),
    };
    if let Err(e) = result {
        eprintln!("holdfast: {e}");
        std::process::exit(1);
    }
}
