pub mod env;
pub mod private_pg;
pub mod worker;
