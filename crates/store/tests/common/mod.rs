//! Shared support for the storage conformance suites.
//!
//! The Azure backends run against Azurite, which `scripts/test.sh` installs from npm and starts
//! on free loopback ports; it exports the connection string as `BIFROST_TEST_AZURITE`. A run
//! without it fails loudly instead of skipping the Azure half of the suite.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bifrost_store::azure_account::AzureAccount;

pub fn azurite_account() -> AzureAccount {
    let conn = std::env::var("BIFROST_TEST_AZURITE").unwrap_or_else(|_| {
        panic!(
            "BIFROST_TEST_AZURITE is not set: run the suite through scripts/test.sh, which starts \
             Azurite, or start Azurite yourself and export its connection string"
        )
    });
    AzureAccount::from_connection_string(&conn)
        .expect("BIFROST_TEST_AZURITE is a valid connection string")
}

/// A unique, valid table/queue/container-name suffix so tests never share state.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
