//! Empty host-side library target: lets sandbox-agent's build script depend on this crate so
//! cargo rebuilds the programs when their dependencies change. The programs live in main.rs.
#![no_std]
