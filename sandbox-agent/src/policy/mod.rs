//! Policy files: parsing and validation (`schema`), what `~`, `$WORKSPACE` and `$UID` mean
//! (`anchors`, with the repository git uses there: `git`), compilation of rules to inode-identity map entries (`compile`, with the
//! hardlinks found below denied directories: `hardlink_scan`, what is mounted below them:
//! `mounted_below`, what absolute `allow_write` paths mean in a container: `in_namespaces`,
//! and the directories and symlinks
//! on the way to them: `the_way`), the `network` section
//! (`net_spec`, `net_compile`), the exec decision for a command before it starts
//! (`exec_check`), the variables `run` takes out of its environment (`env_rules`), the one
//! list of policy keys and their hooks (`keys`), and a policy learned from audit records
//! (`suggest`).

mod anchors;
mod compile;
mod env_rules;
mod exec_check;
mod git;
mod git_config;
mod hardlink_scan;
mod in_namespaces;
mod keys;
mod lint;
mod mounted_below;
mod net_compile;
pub mod net_spec;
pub mod own_caches;
mod resolve;
mod schema;
mod suggest;
mod suggest_trees;
mod the_way;
pub mod watch;

pub use anchors::{Anchors, WORKSPACE};
pub use compile::{
    compile, compile_with, compile_with_extra, CompiledPolicy, NameRuleKey, RuleInfo, NO_USER,
};
pub use env_rules::{sockets_named, EnvRules};
pub use exec_check::{check_program, ExecRefusal};
pub use in_namespaces::list_allowed_in_namespaces_of;
pub use keys::{every_policy, in_use};
pub use lint::lint;
pub use mounted_below::{rule_what_is_mounted_below_in_namespaces_of, MountsBelow};
pub use schema::{parse, Mode, NetDefault, PathKey, Policy, PolicyError};
pub use suggest::Learned;
