//! The `orchestrate` binary: the command line parsed, run, and its exit code returned.

fn main() {
    let cli = orchestrate::cli::parse();
    let code = orchestrate::cli::main_with(cli, orchestrate::cli::Terminal::detect());
    std::process::exit(code);
}
