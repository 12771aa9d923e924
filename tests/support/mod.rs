pub mod env;
pub mod in_process;
pub mod private_pg;
pub mod worker;
