//! The `bifrost` executable: parse the command line, load settings, run.

use std::process::ExitCode;

use bifrost::cli::{Cli, Command, ServeArgs};
use bifrost::host::package::{PackageOptions, package};
use bifrost::settings::{Overrides, RawSettings, Settings};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            let overrides = Overrides {
                port: args.port,
                workspace: args.workspace,
                data_dir: args.data_dir,
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
            match runtime.block_on(bifrost::app::run(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bifrost: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Package(args) => {
            let binary = match args.binary.map_or_else(std::env::current_exe, Ok) {
                Ok(binary) => binary,
                Err(e) => {
                    eprintln!("bifrost package: cannot locate this executable: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let options = PackageOptions {
                source: args.source,
                binary,
                workspace: args.workspace,
                out: args.out,
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
    }
}
