//! The Azure Functions custom-handler contract.
//!
//! Everything that knows the Functions host lives here: the payload-mode envelope
//! ([`envelope`]), dispatching invocations to handlers ([`invoke`]), the rules for
//! `function.json` ([`function_json`]) and assembling a deployable app folder ([`package`]).
//! Forwarded HTTP requests need nothing from this module: they reach the HTTP API unchanged.
//!
//! May depend on: nothing else in Bifrost except through the [`invoke::HttpApi`] and
//! [`invoke::InvocationHandler`] traits, which the application implements.

pub mod envelope;
pub mod function_json;
pub mod invoke;
pub mod package;
