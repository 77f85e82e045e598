//! Types shared by the kernel programs and the userspace daemon.
//!
//! Every type here is `#[repr(C)]` without implicit padding (explicit `_pad` fields), so the byte
//! layout the verifier sees and the one the daemon writes are the same.
#![no_std]

pub mod event;
pub mod maps;
pub mod net;
pub mod offsets;
pub mod privilege;
pub mod repositories;

/// Longest name a path component can have (NAME_MAX).
pub const MAX_NAME_LEN: usize = 255;

pub use event::*;
pub use maps::*;
pub use net::*;
pub use offsets::*;
pub use privilege::*;
pub use repositories::*;

/// The one errno every denial returns.
pub const EPERM: i32 = 1;
