//! The `bifrost` executable: parse the command line, load settings, run the command.

use std::path::PathBuf;
use std::process::ExitCode;

use bifrost::cli::{Cli, Command, ServeArgs, WorkspaceArgs};
use bifrost::commands::{self, RunArgs};
use bifrost::host::package::{PackageOptions, package};
use bifrost::settings::{Overrides, RawSettings, Settings};
use clap::Parser;

fn main() -> ExitCode {
    // Before anything else (and before any thread): a package's own Python, if it has one.
    bifrost_engine::use_packaged_python();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    if let Command::Package(args) = command {
        return package_command(args);
    }
    let overrides = match &command {
        Command::Serve(a) => Overrides {
            port: a.port,
            workspace: a.workspace.clone(),
            data_dir: a.data_dir.clone(),
        },
        Command::Workflows(w) => workspace_overrides(w),
        Command::Validate(v) => workspace_overrides(&v.workspace),
        Command::Run(r) => workspace_overrides(&r.workspace),
        Command::Keys(k) => Overrides {
            data_dir: k.data_dir.clone(),
            ..Overrides::default()
        },
        Command::Package(_) => Overrides::default(),
    };
    let settings = match RawSettings::load(&cli.settings)
        .and_then(|raw| Settings::from_raw(&raw, &overrides))
    {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!("bifrost: {errors}");
            return ExitCode::from(2);
        }
    };
    bifrost::telemetry::init(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bifrost: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve(_) => bifrost::app::run(settings)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Workflows(_) => commands::list_workflows(&settings).await,
            Command::Validate(v) => commands::validate(&settings, &v.file).await,
            Command::Run(r) => {
                let args = RunArgs {
                    workflow: r.workflow,
                    params: r.params,
                    org: r.org,
                    timeout_seconds: r.timeout,
                };
                commands::run_workflow(&settings, args).await
            }
            Command::Keys(k) => commands::keys(&settings, k.action).await,
            Command::Package(_) => Ok(ExitCode::SUCCESS),
        }
    });
    result.unwrap_or_else(|e| {
        eprintln!("bifrost: {e}");
        ExitCode::FAILURE
    })
}

fn workspace_overrides(args: &WorkspaceArgs) -> Overrides {
    Overrides {
        port: None,
        workspace: args.workspace.clone(),
        data_dir: args.data_dir.clone(),
    }
}

fn package_command(args: bifrost::cli::PackageArgs) -> ExitCode {
    let binary: PathBuf = match args.binary.map_or_else(std::env::current_exe, Ok) {
        Ok(binary) => binary,
        Err(e) => {
            eprintln!("bifrost package: cannot locate this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let python = if args.with_python {
        match bifrost_engine::python_layout() {
            Ok(layout) => Some(layout),
            Err(e) => {
                eprintln!("bifrost package: cannot locate this binary's Python: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let options = PackageOptions {
        source: args.source,
        binary,
        workspace: args.workspace,
        out: args.out,
        python,
    };
    match package(&options) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bifrost package: {e}");
            ExitCode::from(2)
        }
    }
}
