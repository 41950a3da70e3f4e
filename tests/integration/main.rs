//! Integration tests: the real `bifrost` binary over real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod cli;
mod foundation;
mod storage;
mod support;
