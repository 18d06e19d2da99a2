//! The `metered` command line: `metered serve`, `metered token`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
