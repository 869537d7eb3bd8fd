//! One module per subcommand.

pub mod keys;
pub mod list;
pub mod push;
pub mod serve;
pub mod versioning;
