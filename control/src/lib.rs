//! The ferrogate control plane: config, object model, table publishing, management API.

pub mod api;
pub mod build;
pub mod cli;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod hoststack;
pub mod neighbor;
pub mod parse;
pub mod rejects;
pub mod render;
pub mod state;
