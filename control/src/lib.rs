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

/// The embedded default configuration (virtual devices; see the file's comments).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

#[cfg(test)]
mod default_config_tests {
    #[test]
    fn the_embedded_default_is_valid() {
        let raw = crate::config::RawConfig::parse(super::DEFAULT_CONFIG).unwrap();
        let st = crate::state::State::from_config(&raw).unwrap();
        assert_eq!(st.tunnels.len(), 1);
        assert_eq!(st.xconnects.len(), 1);
    }
}
