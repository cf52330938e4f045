//! The `orchestrate` binary: the command line parsed, run, and its exit code returned.

use clap::Parser;

fn main() {
    let cli = orchestrate::cli::Cli::parse();
    let code = orchestrate::cli::main_with(cli, orchestrate::cli::Terminal::detect());
    std::process::exit(code);
}
