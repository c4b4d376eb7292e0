//! ESP tests: published vectors, round trips, tampering, truncation.
