//! Empty on purpose: this crate only names dependency features (see its `Cargo.toml`), so
//! that `cargo run -p dataflow` (or `-p producer`, `-p analytics`) after a workspace build
//! compiles nothing new.
