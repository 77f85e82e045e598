//! One module per CLI verb.

pub mod attach;
pub mod audit;
pub mod doctor;
pub mod policy_check;
pub mod policy_suggest;
pub mod run;
pub mod status;
