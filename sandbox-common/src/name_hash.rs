//! The hash of one path component, computed the same way by the daemon (when it writes a
//! `NameKey`) and by the kernel program (when it walks up from an opened file).

/// Longest name a path component can have (NAME_MAX).
pub const MAX_NAME_LEN: usize = 255;

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One FNV-1a step; the kernel side calls it in a verifier-friendly bounded loop.
#[inline(always)]
pub fn fnv1a_step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(FNV_PRIME)
}

/// FNV-1a of a whole name.
pub fn name_hash(name: &[u8]) -> u64 {
    name.iter().fold(FNV_OFFSET, |h, b| fnv1a_step(h, *b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(name_hash(b""), FNV_OFFSET);
        assert_eq!(name_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(name_hash(b".ssh"), name_hash(b".aws"));
    }
}
