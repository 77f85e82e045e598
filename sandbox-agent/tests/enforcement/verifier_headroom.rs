//! Every program the daemon loaded was verified well below the verifier's limit of a million
//! instructions. Since Linux 6.8 the verifier walks a `bpf_loop` callback as the loop it is, so
//! one more branch in the inode walk multiplies what it processes (`other_repositories` took
//! `path_link` past the limit on 6.12 with one): a program past it fails the daemon's start on
//! those kernels only. With the margin, the change that comes close fails here first, naming
//! the program, rather than in a load that refuses everything.

/// The verifier's limit (`BPF_COMPLEXITY_LIMIT_INSNS`).
const LIMIT: u32 = 1_000_000;
/// Above this, the next change to the walk may not fit.
const HEADROOM_FROM: u32 = LIMIT / 100 * 85;

#[test]
fn every_program_is_verified_well_below_the_verifiers_limit() {
    let mut counts = Vec::new();
    for info in aya::programs::loaded_programs() {
        let info = info.expect("the kernel lists its programs");
        let name = info.name_as_str().unwrap_or("?").to_string();
        // Zero when the kernel does not say (before 5.16): then there is nothing to hold.
        counts.push((info.verified_instruction_count().unwrap_or(0), name));
    }
    assert!(
        counts.iter().any(|(_, name)| name == "path_link"),
        "the daemon's programs are not loaded: {counts:?}"
    );
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let close: Vec<_> = counts.iter().filter(|(n, _)| *n > HEADROOM_FROM).collect();
    assert!(
        close.is_empty(),
        "verified within {}% of the limit of {LIMIT} instructions: {close:?}",
        100 - HEADROOM_FROM / (LIMIT / 100)
    );
    eprintln!(
        "most instructions verified: {:?}",
        &counts[..counts.len().min(5)]
    );
}
