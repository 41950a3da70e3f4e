//! Bifrost: workflow automation for Managed Service Providers.
//!
//! One binary that serves an HTTP API standalone (`bifrost serve`) or as an Azure Functions
//! custom handler, runs workspace Python workflows in-process, and keeps each client
//! organization's data apart. See `ARCHITECTURE.md` for the map of modules and their boundaries.

pub mod app;
pub mod audit;
pub mod auth;
pub mod backends;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod domain;
pub mod executions;
pub mod forms;
pub mod host;
pub mod http;
pub mod jobs;
pub mod schedules;
pub mod sdk_files;
pub mod sdk_host;
pub mod server;
pub mod settings;
pub mod state;
pub mod telemetry;
