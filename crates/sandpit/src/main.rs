//! The `sandpit` command: a thin CLI over `sandpit-server`.

mod images;
mod lab;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sandpit_server::routes::views::RoleName;
use sandpit_server::{App, Config};
use secrecy::SecretString;

#[derive(Parser)]
#[command(name = "sandpit", version, about = "Learn and run code in the browser")]
struct Cli {
    /// TOML configuration file (see `sandpit config default`).
    #[arg(long, global = true, env = "SANDPIT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage accounts without the web UI.
    #[command(subcommand)]
    User(UserCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Tools for lab authors.
    #[command(subcommand)]
    Lab(LabCommand),
    /// The docker environment's base images, built here from Debian's packages.
    #[command(subcommand)]
    Images(ImagesCommand),
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Build (or refresh) the base images: debian:bookworm-slim, python:3.11-slim,
    /// python:3.11 and their other names. Needs root, debootstrap, podman and the Debian
    /// mirror; new docker sessions get them, running ones keep theirs.
    Build {
        /// Where to keep them (default: docker.images_dir, or data_dir/images).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Debian mirror (default: docker.debian_mirror).
        #[arg(long)]
        mirror: Option<String>,
    },
    /// List the base images new docker sessions get.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LabCommand {
    /// Check lab folders and report every problem with its file and line.
    Validate(LabArgs),
    /// Judge each lab's starter (it must fail) and solution (it must pass) in real sandboxes.
    Test(LabArgs),
    /// Turn another platform's content into a lab folder, report what could not be mapped,
    /// and validate the result.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// A Killercoda scenario: a folder with index.json, its step markdown and scripts.
    Killercoda {
        /// The scenario folder.
        dir: PathBuf,
        /// Where to write the lab folder (default: ./<slug>); must be empty or absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args)]
struct LabArgs {
    /// Lab folders, or folders of lab folders.
    dirs: Vec<PathBuf>,
    /// Also the labs built into this binary.
    #[arg(long)]
    built_in: bool,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the default configuration, with comments.
    Default,
    /// Print the effective configuration as JSON (secrets left out).
    Show,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password is read from standard input (prompted on a terminal).
    Create(CreateUser),
}

#[derive(Args)]
struct CreateUser {
    #[arg(long)]
    username: String,
    #[arg(long)]
    email: Option<String>,
    /// Make the account an admin (same as --role admin).
    #[arg(long, conflicts_with = "role")]
    admin: bool,
    #[arg(long, value_enum, default_value = "learner")]
    role: RoleArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Learner,
    Author,
    Admin,
}

fn main() -> std::process::ExitCode {
    // `sandpit agent` is the program inside every sandbox: it must start before anything else
    // (no runtime, no logging, no configuration) because it forks and unshares namespaces.
    // In a box with a container engine it is also `newuidmap` and `newgidmap`.
    if let Some(code) = sandpit_sandbox::agent::as_idmap_helper() {
        return code;
    }
    if std::env::args_os().nth(1).is_some_and(|a| a == "agent") {
        return sandpit_sandbox::agent::main();
    }
    match cli_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn cli_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Config(ConfigCommand::Default) = command {
        print!("{}", sandpit_server::config::DEFAULT_CONFIG_TOML);
        return Ok(());
    }
    if let Command::Lab(LabCommand::Validate(args)) = &command {
        return lab::validate(&args.dirs, args.built_in);
    }
    if let Command::Lab(LabCommand::Import(ImportCommand::Killercoda { dir, out })) = &command {
        return lab::import_killercoda(dir, out.as_deref());
    }
    let config = Config::load(cli.config.as_deref())?;
    if let Command::Config(ConfigCommand::Show) = command {
        println!("{:#}", serde_json::to_value(&config)?);
        return Ok(());
    }
    let mut log = config.log.clone();
    // A tool's output is its report or document on stdout; only the server logs there.
    let tool = !matches!(command, Command::Serve | Command::Migrate);
    if tool {
        log.level = "warn".into();
    }
    sandpit_server::telemetry::init(&log, tool);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run(command, config))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = App::build(config).await?;
            app.run_until_stopped().await
        }
        Command::Migrate => {
            sandpit_server::open_store(&config, true).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Create(args)) => create_user(config, args).await,
        Command::Openapi => {
            // A server of its own on a throwaway data directory: never the configured one,
            // whose sessions a start-up would reconcile under a running server's feet.
            let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
            let mut config = Config {
                server: sandpit_server::config::ServerConfig {
                    bind: "127.0.0.1:0".parse()?,
                    ..config.server.clone()
                },
                data_dir: scratch.path().to_owned(),
                ..config
            };
            config.database.url = None;
            config.runs.warm_pool = 0;
            let app = App::build(config).await?;
            let doc = sandpit_server::routes::openapi_document(app.state());
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(())
        }
        Command::Lab(LabCommand::Test(args)) => lab::test(config, &args.dirs, args.built_in).await,
        Command::Images(ImagesCommand::Build { dir, mirror }) => {
            images::build(&config, dir, mirror).await
        }
        Command::Images(ImagesCommand::List { dir }) => images::list(&config, dir).await,
        Command::Config(_) | Command::Lab(LabCommand::Validate(_) | LabCommand::Import(_)) => {
            unreachable!("handled before the runtime starts")
        }
    }
}

fn read_password() -> anyhow::Result<SecretString> {
    let line = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").context("cannot read the password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if line.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(SecretString::from(line))
}

async fn create_user(config: Config, args: CreateUser) -> anyhow::Result<()> {
    let role = if args.admin {
        RoleName::Admin
    } else {
        match args.role {
            RoleArg::Learner => RoleName::Learner,
            RoleArg::Author => RoleName::Author,
            RoleArg::Admin => RoleName::Admin,
        }
    };
    let password = read_password()?;
    let store = sandpit_server::open_store(&config, true).await?;
    let user = sandpit_server::accounts::register(
        store.as_ref(),
        &args.username,
        args.email.as_deref(),
        password,
        role.into(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the user: {e}"))?;
    println!(
        "created {} ({}) with role {}",
        user.username,
        user.id,
        user.role.as_str()
    );
    Ok(())
}
