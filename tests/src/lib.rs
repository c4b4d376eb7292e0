//! Harness for end-to-end tests: generated configs, namespaces, daemon processes.
