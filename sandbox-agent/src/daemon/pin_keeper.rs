//! The daemon's own hold on what it pinned. Pins in bpffs are what keeps the programs attached
//! and the maps alive after the daemon exits; a confined task cannot touch them (self-protection
//! denies every bpffs write), but root outside can `rm` them by mistake. While the daemon runs,
//! its own references keep every link attached and every map alive whatever happens to the
//! pins, and it puts a removed pin back (logged loudly, counted in `status`), so that a later
//! restart still finds enforcement in place.

use std::path::{Path, PathBuf};

use aya::{
    maps::MapData,
    programs::links::{FdLink, PinnedLink},
};

use crate::bpf::loader::PinLayout;

/// A link pin and two references to its link: re-pinning consumes one, and the other keeps
/// the link attached should that fail.
struct HeldLink {
    pin: PathBuf,
    refs: Vec<PinnedLink>,
}

pub struct PinKeeper {
    maps_dir: PathBuf,
    links_dir: PathBuf,
    maps: Vec<(PathBuf, MapData)>,
    links: Vec<HeldLink>,
}

impl PinKeeper {
    /// Opens every pin under `pins` (call after the programs were attached and pinned).
    pub fn open(pins: &PinLayout) -> anyhow::Result<Self> {
        let mut keeper = Self {
            maps_dir: pins.maps(),
            links_dir: pins.links(),
            maps: Vec::new(),
            links: Vec::new(),
        };
        for pin in entries(&keeper.maps_dir)? {
            let map = MapData::from_pin(&pin)
                .map_err(|e| anyhow::anyhow!("cannot open pinned map {}: {e}", pin.display()))?;
            keeper.maps.push((pin, map));
        }
        for pin in entries(&keeper.links_dir)? {
            let mut refs = Vec::new();
            for _ in 0..2 {
                refs.push(PinnedLink::from_pin(&pin).map_err(|e| {
                    anyhow::anyhow!("cannot open pinned link {}: {e}", pin.display())
                })?);
            }
            keeper.links.push(HeldLink { pin, refs });
        }
        Ok(keeper)
    }

    /// Pins again whatever was removed; returns one line per pin restored or that could not be.
    pub fn restore(&mut self) -> Vec<Result<PathBuf, String>> {
        let mut out = Vec::new();
        let missing = |p: &Path| std::fs::symlink_metadata(p).is_err();
        if self.maps.iter().any(|(p, _)| missing(p)) || self.links.iter().any(|l| missing(&l.pin)) {
            for dir in [&self.maps_dir, &self.links_dir] {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    out.push(Err(format!("cannot recreate {}: {e}", dir.display())));
                }
            }
        }
        for (pin, map) in &self.maps {
            if missing(pin) {
                out.push(
                    map.pin(pin)
                        .map(|()| pin.clone())
                        .map_err(|e| format!("cannot pin {} again: {e}", pin.display())),
                );
            }
        }
        for held in &mut self.links {
            if !missing(&held.pin) {
                continue;
            }
            let Some(link) = held.refs.pop() else {
                continue;
            };
            match FdLink::from(link).pin(&held.pin) {
                Ok(pinned) => {
                    held.refs.push(pinned);
                    if let Ok(spare) = PinnedLink::from_pin(&held.pin) {
                        held.refs.push(spare);
                    }
                    out.push(Ok(held.pin.clone()));
                }
                Err(e) => out.push(Err(format!(
                    "cannot pin {} again: {e} (the daemon still holds the link: it stays \
                     attached until the daemon exits)",
                    held.pin.display()
                ))),
            }
        }
        out
    }
}

fn entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("cannot list {}: {e}", dir.display()))?
    {
        out.push(entry?.path());
    }
    out.sort();
    Ok(out)
}
