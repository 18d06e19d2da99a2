//! The `metered` binary: `metered serve`, `metered token`, `metered run`,
//! `metered stream`, `metered devices`.

#[cfg(feature = "hosting")]
mod room;
#[cfg(feature = "runtime")]
mod run;
mod serve;
#[cfg(all(feature = "sources", feature = "hosting"))]
mod source_flags;
#[cfg(feature = "sources")]
mod stream;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// metered-realtime: a native, wire-compatible Metered Realtime host.
#[derive(Parser)]
#[command(name = "metered", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text", env = "METERED_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the messaging service (WebSocket at /v1, REST under /v1/...).
    Serve(serve::ServeArgs),
    /// Mint a JWT from a secret key in the configuration.
    Token(token::TokenArgs),
    /// Run an agent component: in a room (`--channel`) or offline on a WAV file.
    #[cfg(feature = "runtime")]
    Run(run::RunArgs),
    /// Publish a file, RTSP stream or device into a room until interrupted.
    #[cfg(all(feature = "sources", feature = "hosting"))]
    Stream(stream::StreamArgs),
    /// List the cameras, microphones, screen and FFmpeg input devices here.
    #[cfg(feature = "sources")]
    Devices(stream::DevicesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("METERED_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Token(args) => token::run(args),
        #[cfg(feature = "runtime")]
        Command::Run(args) => run::run(args),
        #[cfg(all(feature = "sources", feature = "hosting"))]
        Command::Stream(args) => stream::run(args),
        #[cfg(feature = "sources")]
        Command::Devices(args) => stream::devices(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("metered: {e:#}");
            ExitCode::FAILURE
        }
    }
}
