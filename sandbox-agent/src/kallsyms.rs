//! Addresses of kernel symbols, from /proc/kallsyms.

use std::path::Path;

pub const KALLSYMS: &str = "/proc/kallsyms";

/// The address of the kernel symbol `name` in `/proc/kallsyms`, or `None` when it is not there
/// or hidden (`kernel.kptr_restrict` shows it as zero).
pub fn address_of(name: &str) -> Option<u64> {
    address_in(&std::fs::read_to_string(Path::new(KALLSYMS)).ok()?, name)
}

/// The address of `name` in the text of a kallsyms file ("address type name [module]" lines).
fn address_in(kallsyms: &str, name: &str) -> Option<u64> {
    kallsyms.lines().find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let (address, _kind, symbol) = (fields.next()?, fields.next()?, fields.next()?);
        if symbol != name || fields.next().is_some() {
            return None;
        }
        u64::from_str_radix(address, 16).ok().filter(|&a| a != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::address_in;

    const SAMPLE: &str = "\
ffffffff81000000 T _stext
ffffffff83a5e040 d rename_lock_shadow
ffffffff83a5e080 D rename_lock
ffffffffc0a01000 t rename_lock\t[some_module]
";

    #[test]
    fn finds_a_kernel_symbol_by_its_exact_name_not_a_module_one() {
        assert_eq!(
            address_in(SAMPLE, "rename_lock"),
            Some(0xffff_ffff_83a5_e080)
        );
        assert_eq!(address_in(SAMPLE, "rename_loc"), None);
    }

    #[test]
    fn a_hidden_address_is_no_address() {
        let hidden = "0000000000000000 D rename_lock\n";
        assert_eq!(address_in(hidden, "rename_lock"), None);
    }
}
