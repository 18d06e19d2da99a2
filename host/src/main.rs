//! The `metered` command line.
fn main() {}
