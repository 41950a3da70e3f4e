//! Integration tests of `bifrost-secrets`: one conformance suite expanded per backend, plus
//! backend-specific tests (Key Vault against a loopback HTTPS double of its REST API, the local
//! store against real files). One test target keeps linking cheap on small machines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod keyvault;
mod local;
mod mock_vault;
mod support;
