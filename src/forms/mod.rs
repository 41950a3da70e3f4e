//! Forms: how technicians and client users run workflows without writing code.
//!
//! `model` is the stored form (v1-compatible JSON, plus multi-step `steps`) and its definition
//! checks; `validate` checks a submission server-side; `visibility` is the small, safe expression
//! language of `visibilityExpression`; `generated` builds a form from a workflow's parameters.
//! `store` keeps forms per scope (and imports `*.form.json` workspace files), `providers`
//! resolves data-provider inputs and caches their options in storage, `files` keeps uploads.
//!
//! May depend on: `bifrost-engine` types (workflow metadata) and the storage contracts. Not on
//! HTTP or the engine runtime.

pub mod files;
pub mod generated;
pub mod import;
pub mod model;
pub mod providers;
pub mod store;
pub mod validate;
pub mod visibility;
