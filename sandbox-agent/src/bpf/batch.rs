//! Batched writes and removals of hash map entries (`BPF_MAP_UPDATE_BATCH`,
//! `BPF_MAP_DELETE_BATCH`, Linux 5.6+), which aya 0.14 does not offer: a 10,000-rule attach
//! made 20,000 `bpf` calls, and under emulation each call is what costs. The batch is only an
//! accelerator: whatever it did not do (the kernel has no batch command, a key is missing, the
//! map is full) is done, or fails with aya's own error, one entry at a time from where it
//! stopped.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
};

use aya::{
    maps::{HashMap, IterableMap, MapData, MapError},
    Pod,
};
use aya_obj::generated::{bpf_attr, bpf_attr__bindgen_ty_3, bpf_cmd};

/// Entries per call: the kernel copies keys one by one, so this only bounds one call's time.
const CHUNK: usize = 4096;

/// Inserts every `(keys[i], values[i])` into `map`, as `HashMap::insert` with flags 0 would.
fn insert_all<K: Pod, V: Pod>(
    map: &mut HashMap<MapData, K, V>,
    keys: &[K],
    values: &[V],
) -> Result<(), MapError> {
    debug_assert_eq!(keys.len(), values.len());
    let fd = map.map().fd().as_fd();
    let mut start = 0;
    while start < keys.len() {
        let end = (start + CHUNK).min(keys.len());
        let (done, error) = batch(
            bpf_cmd::BPF_MAP_UPDATE_BATCH,
            fd,
            &keys[start..end],
            Some(&values[start..end]),
        );
        start += done;
        if error.is_some() {
            break;
        }
    }
    // What the batch did not write: one by one, so a real failure is reported as usual.
    for (k, v) in keys[start..].iter().zip(&values[start..]) {
        map.insert(k, v, 0)?;
    }
    Ok(())
}

/// Inserts every `(key, value)` of `entries` into `map`, in batches as `insert_all` does.
pub fn insert_entries<K: Pod, V: Pod>(
    map: &mut HashMap<MapData, K, V>,
    entries: impl Iterator<Item = (K, V)>,
) -> Result<(), MapError> {
    let (keys, values): (Vec<K>, Vec<V>) = entries.unzip();
    insert_all(map, &keys, &values)
}

/// Removes `keys` from `map`, best effort (a key that is not there is skipped).
pub fn remove_all<K: Pod, V: Pod>(map: &mut HashMap<MapData, K, V>, keys: &[K]) {
    let fd = map.map().fd().as_fd();
    let mut start = 0;
    while start < keys.len() {
        let end = (start + CHUNK).min(keys.len());
        let (done, error) =
            batch::<K, u8>(bpf_cmd::BPF_MAP_DELETE_BATCH, fd, &keys[start..end], None);
        start += done;
        match error {
            None => {}
            // The batch stops at a key that is not there: skip it and go on.
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => start += 1,
            Some(_) => break,
        }
    }
    for k in keys.get(start..).unwrap_or_default() {
        let _ = map.remove(k);
    }
}

/// One batch command over `keys` (and `values`): how many entries the kernel processed, and
/// its error if it stopped before the end.
fn batch<K: Pod, V: Pod>(
    cmd: bpf_cmd,
    map: BorrowedFd<'_>,
    keys: &[K],
    values: Option<&[V]>,
) -> (usize, Option<io::Error>) {
    // SAFETY: bpf_attr is a union of plain integer structs; all zeroes is valid (and what the
    // kernel requires of every byte this command does not use).
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.batch = bpf_attr__bindgen_ty_3 {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: values.map_or(0, |v| v.as_ptr() as u64),
        count: keys.len() as u32,
        map_fd: map.as_raw_fd() as u32,
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: `keys` (and `values`) are `count` contiguous Pod entries of the map's key (and
    // value) size (aya checked the sizes when it typed the map), alive for the call; the
    // kernel reads them and writes back only `attr.batch.count`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            &mut attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>() as libc::c_uint,
        )
    };
    let error = (r < 0).then(io::Error::last_os_error);
    // SAFETY: reading back the member written above; the kernel sets `count` to the entries
    // it processed, also on error (0 when it refused the command outright).
    let done = unsafe { attr.batch.count } as usize;
    let done = match error {
        None => keys.len(),
        Some(_) => done.min(keys.len()),
    };
    (done, error)
}
