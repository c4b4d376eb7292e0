//! The ferrogate control plane: config, object model, table publishing, management API.
