//! The `modelbay` binary: `serve` runs the server; `push`, `models` and `versions` talk to a
//! running server through its management API.

mod client;
mod commands;
mod config;
mod telemetry;

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
    /// Point an alias (default: production) at a version; it is loaded and warmed up first.
    Promote(commands::versioning::PromoteArgs),
    /// Move an alias back to the version it pointed at before its last move.
    Rollback(commands::versioning::RollbackArgs),
    /// List a model's aliases.
    Aliases(commands::versioning::ModelArgs),
    /// Split a model's traffic over aliases or versions, e.g. production=90 canary=10.
    Traffic(commands::versioning::TrafficArgs),
    /// Archive a version: kept, never served.
    Archive(commands::versioning::VersionArgs),
    /// Delete a version (its number is never reused).
    Delete(commands::versioning::VersionArgs),
    /// Show the audit trail of registry changes.
    Audit(commands::versioning::AuditArgs),
    /// Show every replica sharing the registry: state, last event applied, loaded versions.
    Cluster(commands::list::ClusterArgs),
    /// Manage API keys (needs an admin key).
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
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
            Command::Promote(args) => commands::versioning::promote(args).await,
            Command::Rollback(args) => commands::versioning::rollback(args).await,
            Command::Aliases(args) => commands::versioning::aliases(args).await,
            Command::Traffic(args) => commands::versioning::traffic(args).await,
            Command::Archive(args) => commands::versioning::archive(args).await,
            Command::Delete(args) => commands::versioning::delete(args).await,
            Command::Audit(args) => commands::versioning::audit(args).await,
            Command::Cluster(args) => commands::list::cluster(args).await,
            Command::Keys(command) => commands::keys::run(command).await,
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
