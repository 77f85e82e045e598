//! Writes compiled policies into the kernel maps, atomically per cgroup: the new generation's
//! rules are written under a fresh policy id first, then the cgroup's entry flips to it in one
//! map update, then the old generation is removed. A failure before the flip removes what was
//! written and leaves the previous policy in force.

use aya::maps::{HashMap, Map, MapData};
use sandbox_common::{
    CgroupPolicy, InodeKey, NameKey, RuleValue, MAP_CGROUP_POLICY, MAP_INODE_RULES, MAP_NAME_RULES,
    MODE_AUDIT, MODE_ENFORCE,
};

use crate::policy::{CompiledPolicy, Mode};

#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    #[error("map {0} missing from the eBPF object")]
    Missing(&'static str),
    #[error("map {map}: {message}")]
    Map { map: &'static str, message: String },
}

pub struct PolicyMaps {
    cgroups: HashMap<MapData, u64, CgroupPolicy>,
    inodes: HashMap<MapData, InodeKey, RuleValue>,
    names: HashMap<MapData, NameKey, RuleValue>,
    next_policy_id: u32,
}

fn take<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut aya::Ebpf,
    name: &'static str,
) -> Result<HashMap<MapData, K, V>, MapsError> {
    let map: Map = ebpf.take_map(name).ok_or(MapsError::Missing(name))?;
    HashMap::try_from(map).map_err(|e| MapsError::Map {
        map: name,
        message: e.to_string(),
    })
}

impl PolicyMaps {
    pub fn new(ebpf: &mut aya::Ebpf) -> Result<Self, MapsError> {
        let mut maps = Self {
            cgroups: take(ebpf, MAP_CGROUP_POLICY)?,
            inodes: take(ebpf, MAP_INODE_RULES)?,
            names: take(ebpf, MAP_NAME_RULES)?,
            next_policy_id: 1,
        };
        // Pinned maps may hold generations written by an earlier daemon: never reuse their ids.
        let max_seen = maps
            .cgroups
            .iter()
            .filter_map(Result::ok)
            .map(|(_, v)| v.policy_id)
            .chain(
                maps.inodes
                    .keys()
                    .filter_map(Result::ok)
                    .map(|k| k.policy_id),
            )
            .chain(
                maps.names
                    .keys()
                    .filter_map(Result::ok)
                    .map(|k| k.policy_id),
            )
            .max()
            .unwrap_or(0);
        maps.next_policy_id = max_seen.wrapping_add(1).max(1);
        Ok(maps)
    }

    /// Cgroups attached in the kernel right now (including ones an earlier daemon attached).
    pub fn attached(&self) -> Vec<(u64, CgroupPolicy)> {
        self.cgroups.iter().filter_map(Result::ok).collect()
    }

    /// Makes `policy` the one confining `cgroup_id`; returns the new policy id and the number of
    /// map entries written.
    pub fn attach(
        &mut self,
        cgroup_id: u64,
        policy: &CompiledPolicy,
    ) -> Result<(u32, usize), MapsError> {
        let policy_id = self.next_policy_id;
        self.next_policy_id = self.next_policy_id.wrapping_add(1).max(1);
        if let Err(e) = self.write_rules(policy_id, policy) {
            self.remove_rules(policy_id);
            return Err(e);
        }
        let previous = self.cgroups.get(&cgroup_id, 0).ok();
        let value = CgroupPolicy {
            policy_id,
            mode: match policy.mode {
                Mode::Enforce => MODE_ENFORCE,
                Mode::Audit => MODE_AUDIT,
            },
            flags: policy.flags,
        };
        if let Err(e) = self.cgroups.insert(cgroup_id, value, 0) {
            self.remove_rules(policy_id);
            return Err(MapsError::Map {
                map: MAP_CGROUP_POLICY,
                message: e.to_string(),
            });
        }
        if let Some(previous) = previous {
            self.remove_rules(previous.policy_id);
        }
        Ok((
            policy_id,
            policy.inode_rules.len() + policy.name_rules.len(),
        ))
    }

    /// Stops confining `cgroup_id`. Returns false when it was not attached.
    pub fn detach(&mut self, cgroup_id: u64) -> Result<bool, MapsError> {
        let Ok(previous) = self.cgroups.get(&cgroup_id, 0) else {
            return Ok(false);
        };
        // Entry first, rules after: a cgroup never points at a half-removed generation.
        self.cgroups
            .remove(&cgroup_id)
            .map_err(|e| MapsError::Map {
                map: MAP_CGROUP_POLICY,
                message: e.to_string(),
            })?;
        self.remove_rules(previous.policy_id);
        Ok(true)
    }

    fn write_rules(&mut self, policy_id: u32, policy: &CompiledPolicy) -> Result<(), MapsError> {
        for (&(dev, ino), value) in &policy.inode_rules {
            let key = InodeKey {
                policy_id,
                dev,
                ino,
            };
            self.inodes
                .insert(key, *value, 0)
                .map_err(|e| MapsError::Map {
                    map: MAP_INODE_RULES,
                    message: format!(
                        "{e} (map full? it holds {} rules)",
                        sandbox_common::MAX_INODE_RULES
                    ),
                })?;
        }
        for (k, value) in &policy.name_rules {
            let key = NameKey::new(policy_id, k.parent_dev, k.parent_ino, &k.name);
            self.names
                .insert(key, *value, 0)
                .map_err(|e| MapsError::Map {
                    map: MAP_NAME_RULES,
                    message: format!(
                        "{e} (map full? it holds {} rules)",
                        sandbox_common::MAX_NAME_RULES
                    ),
                })?;
        }
        Ok(())
    }

    /// Removes every rule of one generation (best effort: a leftover entry of an unreferenced
    /// generation is inert, because no cgroup points at its id).
    fn remove_rules(&mut self, policy_id: u32) {
        let inode_keys: Vec<InodeKey> = self
            .inodes
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.policy_id == policy_id)
            .collect();
        for k in inode_keys {
            let _ = self.inodes.remove(&k);
        }
        let name_keys: Vec<NameKey> = self
            .names
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.policy_id == policy_id)
            .collect();
        for k in name_keys {
            let _ = self.names.remove(&k);
        }
    }
}
