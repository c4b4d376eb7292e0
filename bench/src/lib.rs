//! ferrobench support code.
