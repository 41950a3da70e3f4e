//! The command line: `serve` (the default, also what the Functions host runs) and the operator
//! and workflow-author commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bifrost",
    version,
    about = "Workflow automation for MSPs: Python workflows per client organization, served standalone or as an Azure Functions custom handler"
)]
pub struct Cli {
    /// Functions-style settings file whose `Values` apply under the environment.
    #[arg(long, global = true, default_value = "local.settings.json")]
    pub settings: PathBuf,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default). Under the Functions host the port comes from
    /// FUNCTIONS_CUSTOMHANDLER_PORT.
    Serve(ServeArgs),
    /// List the workspace's workflows, data providers and import errors (exit 1 on import errors).
    Workflows(WorkspaceArgs),
    /// Check one workflow file: imports it and reports what it defines and any errors.
    Validate(ValidateArgs),
    /// Run one workflow against the configured storage and print its logs and result.
    Run(RunArgs),
    /// Manage the platform's function keys (x-functions-key / ?code=).
    Keys(KeysArgs),
    /// Assemble a deployable Azure Functions app folder (host.json, <function>/function.json,
    /// the binary, optionally the workspace).
    Package(PackageArgs),
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (overrides BIFROST_PORT; ignored under the Functions host).
    #[arg(long)]
    pub port: Option<u16>,
    /// Workspace folder with workflow files (overrides BIFROST_WORKSPACE_LOCATION).
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Data folder for the embedded backends (overrides BIFROST_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Default, clap::Args)]
pub struct WorkspaceArgs {
    /// Workspace folder (overrides BIFROST_WORKSPACE_LOCATION).
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Data folder for the embedded backends (overrides BIFROST_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The Python file to check.
    pub file: PathBuf,
    #[command(flatten)]
    pub workspace: WorkspaceArgs,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Workflow name (as in @workflow(name=...)).
    pub workflow: String,
    /// A parameter as name=value; repeat for several. Non-string types are parsed as JSON.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Run in this organization's scope (default: GLOBAL).
    #[arg(long)]
    pub org: Option<String>,
    /// Override the workflow's timeout_seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub workspace: WorkspaceArgs,
}

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
    /// Data folder for the embedded backends (overrides BIFROST_DATA_DIR).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key; its value is printed once and cannot be shown again.
    Create {
        /// A name for the key (two active keys per name allow rotation).
        name: String,
        /// Scope the key to one organization (default: GLOBAL, platform-wide).
        #[arg(long)]
        org: Option<String>,
        /// Expire the key after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List keys (never their values) of GLOBAL or one organization.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a key by id.
    Revoke { key_id: String },
}

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// Output folder (must not exist, or be empty).
    pub out: PathBuf,
    /// Folder holding host.json and functions/.
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
    /// Binary to ship (default: this executable).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Workspace folder to ship as workspace/.
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Also ship this binary's Python (libpython and the standard library) as python/, so the
    /// package runs on a host without Python.
    #[arg(long)]
    pub with_python: bool,
}
