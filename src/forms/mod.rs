//! Forms: how technicians and client users run workflows without writing code.
//!
//! `model` is the stored form (v1-compatible JSON, plus multi-step `steps`) and its definition
//! checks; `validate` checks a submission server-side; `visibility` is the small, safe expression
//! language of `visibilityExpression`; `generated` builds a form from a workflow's parameters.
//! `store` keeps forms per scope (and `import` brings in `*.form.json` workspace files),
//! `providers` resolves data-provider inputs and caches their options in storage, `files` keeps
//! uploads and hands them to runs. `access` decides who may open a form; `launch` runs and
//! caches launch workflows; `field_options` answers a field's data-provider options; `error`
//! is what all of them can fail with.
//!
//! May depend on: `bifrost-engine` types (workflow metadata), the storage contracts, the domain
//! services (roles), and the runner (launch workflows, providers). Not on HTTP.

pub mod access;
pub mod definition;
pub mod error;
pub mod field_options;
pub mod files;
pub mod generated;
pub mod import;
pub mod launch;
pub mod model;
pub mod providers;
pub mod query;
pub mod store;
pub mod validate;
pub mod visibility;
