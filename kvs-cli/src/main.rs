//! The `kvs` command.

fn main() {}
