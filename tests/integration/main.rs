//! Integration tests: the real `bifrost` binary over real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_admin;
mod api_history;
mod audit;
mod cli;
mod cross_tenant;
mod durability;
mod forms;
mod foundation;
mod openapi;
mod package;
mod permissions;
mod run_workflows;
mod schedules;
mod security;
mod storage;
mod support;
mod tidy;
mod workflow_keys;
