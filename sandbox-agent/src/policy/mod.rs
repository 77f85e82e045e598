//! Policy files: parsing and validation (`schema`), compilation of rules to inode-identity
//! map entries (`compile`), and the exec decision for a command before it starts (`exec_check`).

mod compile;
mod exec_check;
mod schema;

pub use compile::{compile, CompiledPolicy, NameRuleKey, RuleInfo};
pub use exec_check::{check_program, ExecRefusal};
pub use schema::{parse, Mode, Policy, PolicyError};
