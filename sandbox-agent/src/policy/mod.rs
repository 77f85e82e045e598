//! Policy files: parsing and validation (`schema`), and compilation of rules to inode-identity
//! map entries (`compile`).

mod compile;
mod schema;

pub use compile::{compile, CompiledPolicy, NameRuleKey, RuleInfo};
pub use schema::{parse, Mode, Policy, PolicyError};
