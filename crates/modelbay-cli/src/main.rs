//! The `modelbay` binary: `serve` runs the server; `push`, `models` and `versions` talk to a
//! running server through its management API.

mod client;
mod commands;
mod config;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "modelbay", version, about = "Serve AI models over the network")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<config::ServeArgs>),
    /// Upload a model file as the next version of NAME.
    Push(commands::push::PushArgs),
    /// List models.
    Models(commands::list::ModelsArgs),
    /// List the versions of a model.
    Versions(commands::list::VersionsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(*args).await,
            Command::Push(args) => commands::push::run(args).await,
            Command::Models(args) => commands::list::models(args).await,
            Command::Versions(args) => commands::list::versions(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
