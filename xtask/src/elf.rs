//! Just enough ELF reading to tell a static executable from a dynamic one.

use std::path::Path;

use anyhow::{bail, Context, Result};

const PT_INTERP: u32 = 3;

/// True if the ELF64 file at `path` has no program interpreter (so needs no dynamic loader).
pub fn is_static(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    has_no_interp(&bytes).with_context(|| format!("{} is not a 64-bit ELF file", path.display()))
}

fn has_no_interp(b: &[u8]) -> Result<bool> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        bail!("not a little-endian ELF64 header");
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into()?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let Some(p_type) = b.get(off..off + 4) else {
            bail!("program header {i} is out of bounds");
        };
        if u32::from_le_bytes(p_type.try_into()?) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage() {
        assert!(has_no_interp(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn the_workspace_links_statically_and_the_hosts_shell_is_dynamic() {
        // .cargo/config.toml links every binary of the workspace statically, this one too.
        let exe = std::env::current_exe().unwrap();
        assert!(is_static(&exe).unwrap());
        // Debian's dash (the harness needs a Debian host).
        assert!(!is_static(Path::new("/bin/sh")).unwrap());
    }
}
