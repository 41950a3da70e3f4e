//! Forms: how technicians and client users run workflows without writing code.
//!
//! `model` is the stored form (v1-compatible JSON, plus multi-step `steps`) and its definition
//! checks; `validate` checks a submission server-side; `visibility` is the small, safe expression
//! language of `visibilityExpression`; `generated` builds a form from a workflow's parameters.
//!
//! May depend on: `bifrost-engine` types (workflow metadata). Not on HTTP or the engine runtime.

pub mod generated;
pub mod model;
pub mod validate;
pub mod visibility;
