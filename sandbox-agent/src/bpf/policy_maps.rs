//! Writes compiled policies into the kernel maps, atomically per cgroup: the new generation's
//! rules are written under a fresh policy id first, then the cgroup's entry flips to it in one
//! map update, then the old generation is removed. A failure before the flip removes what was
//! written and leaves the previous policy in force. Every change to a cgroup's entry is
//! followed by a new `CGROUP_GENERATION`, which retires the programs' cached cgroup verdicts.

use aya::maps::{
    lpm_trie::{Key, LpmTrie},
    Array, HashMap, Map, MapData,
};
use sandbox_common::{
    CgroupPolicy, InodeKey, NameKey, NetKey, NetRules, RuleValue, UserGroups, MAP_ANY_ATTACHED,
    MAP_CGROUP_GENERATION, MAP_CGROUP_POLICY, MAP_INODE_RULES, MAP_NAME_RULES, MAP_NET_BINARIES,
    MAP_NET_BINARY_NAMES, MAP_NET_RULES, MAP_USER_GROUPS, MAX_USER_GROUPS, MODE_AUDIT,
    MODE_ENFORCE, NET_KEY_FIXED_BITS, POLICY_ID_ANY, RULE_DENY_EXEC, RULE_DENY_READ,
    RULE_DENY_UNIX, RULE_DENY_WRITE, RULE_TREE,
};

use super::batch;
use crate::policy::{CompiledPolicy, Mode};

#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    #[error("map {0} missing from the eBPF object")]
    Missing(&'static str),
    #[error("map {map}: {message}")]
    Map { map: &'static str, message: String },
}

/// A rule map's entries against its capacity.
#[derive(Clone, Debug)]
pub struct MapFill {
    pub map: &'static str,
    pub entries: u64,
    pub capacity: u32,
}

impl MapFill {
    fn new(map: &'static str, entries: usize, capacity: u32) -> Self {
        Self {
            map,
            entries: entries as u64,
            capacity,
        }
    }
}

/// A generation's policy id and the compiled policy this process wrote under it.
pub type Written<'a> = (u32, &'a CompiledPolicy);

pub struct PolicyMaps {
    any_attached: Array<MapData, u32>,
    generation: Array<MapData, u64>,
    cgroups: HashMap<MapData, u64, CgroupPolicy>,
    inodes: HashMap<MapData, InodeKey, RuleValue>,
    names: HashMap<MapData, NameKey, RuleValue>,
    net: LpmTrie<MapData, NetKey, NetRules>,
    binaries: HashMap<MapData, InodeKey, u32>,
    binary_names: HashMap<MapData, NameKey, u32>,
    user_groups: HashMap<MapData, u64, UserGroups>,
    next_policy_id: u32,
}

fn take<T: TryFrom<Map, Error = aya::maps::MapError>>(
    ebpf: &mut aya::Ebpf,
    name: &'static str,
) -> Result<T, MapsError> {
    let map: Map = ebpf.take_map(name).ok_or(MapsError::Missing(name))?;
    T::try_from(map).map_err(|e| MapsError::Map {
        map: name,
        message: e.to_string(),
    })
}

/// The map keys of one generation's rules: written by `write_rules`, removed by
/// `remove_written`, so both build them the same way.
fn inode_key(policy_id: u32, dev: u32, ino: u64) -> InodeKey {
    InodeKey {
        policy_id,
        dev,
        ino,
    }
}

fn name_key(policy_id: u32, k: &crate::policy::NameRuleKey) -> NameKey {
    NameKey::new(policy_id, k.parent_dev, k.parent_ino, &k.name)
}

fn net_key(policy_id: u32, scope: u32, cidr: &crate::policy::net_spec::Cidr) -> Key<NetKey> {
    let data = NetKey {
        policy_id,
        scope,
        family: cidr.family,
        addr: cidr.addr,
    };
    Key::new(NET_KEY_FIXED_BITS + cidr.prefix, data)
}

/// The error of a failed insert into `map`, which holds at most `capacity` entries.
/// The `USER_GROUPS` value of `policy`: its user's groups, the first `MAX_USER_GROUPS`.
fn user_groups(policy: &CompiledPolicy) -> UserGroups {
    let mut value = UserGroups {
        count: 0,
        gids: [u32::MAX; MAX_USER_GROUPS],
    };
    for (slot, gid) in value.gids.iter_mut().zip(&policy.user_groups) {
        *slot = *gid;
        value.count += 1;
    }
    value
}

fn insert_error(map: &'static str, capacity: u32) -> impl Fn(aya::maps::MapError) -> MapsError {
    move |e| MapsError::Map {
        map,
        message: format!("{e} (map full? it holds {capacity} entries)"),
    }
}

impl PolicyMaps {
    pub fn new(ebpf: &mut aya::Ebpf) -> Result<Self, MapsError> {
        let mut maps = Self {
            any_attached: take(ebpf, MAP_ANY_ATTACHED)?,
            generation: take(ebpf, MAP_CGROUP_GENERATION)?,
            cgroups: take(ebpf, MAP_CGROUP_POLICY)?,
            inodes: take(ebpf, MAP_INODE_RULES)?,
            names: take(ebpf, MAP_NAME_RULES)?,
            net: take(ebpf, MAP_NET_RULES)?,
            binaries: take(ebpf, MAP_NET_BINARIES)?,
            binary_names: take(ebpf, MAP_NET_BINARY_NAMES)?,
            user_groups: take(ebpf, MAP_USER_GROUPS)?,
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
                    .map(|k| k.policy_id)
                    .filter(|&id| id != POLICY_ID_ANY),
            )
            .chain(
                maps.names
                    .keys()
                    .filter_map(Result::ok)
                    .map(|k| k.policy_id),
            )
            .chain(
                maps.net
                    .keys()
                    .filter_map(Result::ok)
                    .map(|k| k.data().policy_id),
            )
            .max()
            .unwrap_or(0);
        maps.next_policy_id = max_seen.wrapping_add(1).max(1);
        // Until the daemon has seen what is attached (`settle`), assume something is: a map
        // newly created next to pinned attachments (an upgrade) must not let everyone through.
        maps.set_any_attached(true)?;
        // Retires verdicts an earlier daemon may have left current (it died between a change
        // and its increment).
        maps.next_generation()?;
        Ok(maps)
    }

    /// Increments `CGROUP_GENERATION`: verdicts the programs cached before are not used again.
    fn next_generation(&mut self) -> Result<(), MapsError> {
        let error = |e: aya::maps::MapError| MapsError::Map {
            map: MAP_CGROUP_GENERATION,
            message: e.to_string(),
        };
        let current = self.generation.get(&0, 0).map_err(error)?;
        self.generation
            .set(0, current.wrapping_add(1), 0)
            .map_err(error)
    }

    fn set_any_attached(&mut self, attached: bool) -> Result<(), MapsError> {
        self.any_attached
            .set(0, u32::from(attached), 0)
            .map_err(|e| MapsError::Map {
                map: MAP_ANY_ATTACHED,
                message: e.to_string(),
            })
    }

    /// Lowers `ANY_ATTACHED` when no cgroup is attached, so that every hook leaves at once.
    pub fn settle(&mut self) {
        if self.cgroups.keys().next().is_none() {
            if let Err(e) = self.set_any_attached(false) {
                // Only costs time: the programs keep looking tasks up.
                tracing::warn!("{e}");
            }
        }
    }

    /// The next policy id: never 0 (a `LINKED_OUT` key) nor `POLICY_ID_ANY`.
    fn allocate_policy_id(&mut self) -> u32 {
        let id = self.next_policy_id;
        self.next_policy_id = match id.wrapping_add(1) {
            0 | POLICY_ID_ANY => 1,
            next => next,
        };
        id
    }

    /// Each rule map's entries (counted in the kernel, whoever wrote them) and capacity: how
    /// close the host is to an attach that would not fit.
    pub fn fill(&self) -> Vec<MapFill> {
        use sandbox_common::{
            MAX_CGROUPS, MAX_INODE_RULES, MAX_NAME_RULES, MAX_NET_BINARIES, MAX_NET_RULES,
        };
        vec![
            MapFill::new(MAP_CGROUP_POLICY, self.cgroups.keys().count(), MAX_CGROUPS),
            MapFill::new(MAP_INODE_RULES, self.inodes.keys().count(), MAX_INODE_RULES),
            MapFill::new(MAP_NAME_RULES, self.names.keys().count(), MAX_NAME_RULES),
            MapFill::new(MAP_NET_RULES, self.net.keys().count(), MAX_NET_RULES),
            MapFill::new(
                MAP_NET_BINARIES,
                self.binaries.keys().count(),
                MAX_NET_BINARIES,
            ),
            MapFill::new(
                MAP_NET_BINARY_NAMES,
                self.binary_names.keys().count(),
                MAX_NET_BINARIES,
            ),
        ]
    }

    /// Cgroups attached in the kernel right now (including ones an earlier daemon attached).
    pub fn attached(&self) -> Vec<(u64, CgroupPolicy)> {
        self.cgroups.iter().filter_map(Result::ok).collect()
    }

    /// Makes `policy` the one confining `cgroup_id`; returns the new policy id and the number of
    /// map entries written. `written` is what this process wrote for the generation it
    /// replaces, when it knows (see `remove_rules`).
    pub fn attach(
        &mut self,
        cgroup_id: u64,
        policy: &CompiledPolicy,
        written: Option<Written>,
    ) -> Result<(u32, usize), MapsError> {
        let policy_id = self.allocate_policy_id();
        if let Err(e) = self.write_rules(policy_id, policy) {
            self.remove_rules(policy_id, Some((policy_id, policy)));
            return Err(e);
        }
        let previous = self.cgroups.get(&cgroup_id, 0).ok();
        // Raised before the cgroup points at the policy: the programs must look tasks up.
        if let Err(e) = self.set_any_attached(true) {
            self.remove_rules(policy_id, Some((policy_id, policy)));
            return Err(e);
        }
        // The user's groups go in before the policy that lets its tasks take them. In between,
        // a previous policy's tasks could take the new user's groups, which the new policy
        // gives them a moment later anyway.
        let previous_groups = self.user_groups.get(&cgroup_id, 0).ok();
        if let Err(e) = self.user_groups.insert(cgroup_id, user_groups(policy), 0) {
            self.remove_rules(policy_id, Some((policy_id, policy)));
            return Err(MapsError::Map {
                map: MAP_USER_GROUPS,
                message: e.to_string(),
            });
        }
        let value = CgroupPolicy {
            policy_id,
            mode: match policy.mode {
                Mode::Enforce => MODE_ENFORCE,
                Mode::Audit => MODE_AUDIT,
            },
            flags: policy.flags,
            caps_allowed_lo: policy.caps_allowed as u32,
            caps_allowed_hi: (policy.caps_allowed >> 32) as u32,
            user_uid: policy.user.0,
            user_gid: policy.user.1,
        };
        if let Err(e) = self.cgroups.insert(cgroup_id, value, 0) {
            self.restore_groups(cgroup_id, previous_groups);
            self.remove_rules(policy_id, Some((policy_id, policy)));
            return Err(MapsError::Map {
                map: MAP_CGROUP_POLICY,
                message: e.to_string(),
            });
        }
        // A task whose cgroup the programs cached as unconfined would stay so without it:
        // undo the flip rather than leave the attachment half in force.
        if let Err(e) = self.next_generation() {
            let _ = match previous {
                Some(previous) => self.cgroups.insert(cgroup_id, previous, 0),
                None => self.cgroups.remove(&cgroup_id),
            };
            self.restore_groups(cgroup_id, previous_groups);
            self.remove_rules(policy_id, Some((policy_id, policy)));
            return Err(e);
        }
        if let Some(previous) = previous {
            self.remove_rules(previous.policy_id, written);
        }
        Ok((
            policy_id,
            policy.inode_rules.len()
                + policy.name_rules.len()
                + policy.net_rules.len()
                + policy.net_binaries.len()
                + policy.net_binary_names.len(),
        ))
    }

    /// Stops confining `cgroup_id`. Returns false when it was not attached.
    pub fn detach(&mut self, cgroup_id: u64, written: Option<Written>) -> Result<bool, MapsError> {
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
        // No policy names them now; one left behind is replaced by the next attach.
        let _ = self.user_groups.remove(&cgroup_id);
        // Only precision: a cached verdict naming a detached cgroup finds no policy and walks.
        if let Err(e) = self.next_generation() {
            tracing::warn!("{e}");
        }
        self.remove_rules(previous.policy_id, written);
        self.settle();
        Ok(true)
    }

    /// Puts back the user's groups a failed attach replaced (`previous`: none before it).
    fn restore_groups(&mut self, cgroup_id: u64, previous: Option<UserGroups>) {
        let _ = match previous {
            Some(previous) => self.user_groups.insert(cgroup_id, previous, 0),
            None => self.user_groups.remove(&cgroup_id),
        };
    }

    fn write_rules(&mut self, policy_id: u32, policy: &CompiledPolicy) -> Result<(), MapsError> {
        use sandbox_common::{MAX_INODE_RULES, MAX_NAME_RULES, MAX_NET_BINARIES, MAX_NET_RULES};
        batch::insert_entries(
            &mut self.inodes,
            policy
                .inode_rules
                .iter()
                .map(|(&(dev, ino), value)| (inode_key(policy_id, dev, ino), *value)),
        )
        .map_err(insert_error(MAP_INODE_RULES, MAX_INODE_RULES))?;
        for (&(dev, ino), value) in &policy.inode_rules {
            if value.flags & RULE_TREE != 0 {
                self.count_protected(dev, ino, value.flags, 1)?;
            }
        }
        batch::insert_entries(
            &mut self.names,
            policy
                .name_rules
                .iter()
                .map(|(k, value)| (name_key(policy_id, k), *value)),
        )
        .map_err(insert_error(MAP_NAME_RULES, MAX_NAME_RULES))?;
        for (&(scope, cidr), value) in &policy.net_rules {
            self.net
                .insert(&net_key(policy_id, scope, &cidr), value, 0)
                .map_err(insert_error(MAP_NET_RULES, MAX_NET_RULES))?;
        }
        batch::insert_entries(
            &mut self.binaries,
            policy
                .net_binaries
                .iter()
                .map(|(&(dev, ino), scope)| (inode_key(policy_id, dev, ino), *scope)),
        )
        .map_err(insert_error(MAP_NET_BINARIES, MAX_NET_BINARIES))?;
        batch::insert_entries(
            &mut self.binary_names,
            policy
                .net_binary_names
                .iter()
                .map(|(k, scope)| (name_key(policy_id, k), *scope)),
        )
        .map_err(insert_error(MAP_NET_BINARY_NAMES, MAX_NET_BINARIES))?;
        Ok(())
    }

    /// Counts one more (or one fewer) generation protecting the directory (dev, ino) in the
    /// `POLICY_ID_ANY` list that `path_link` consults for every task; the entry goes when no
    /// generation protects it. Its bits are the union of what the generations deny there.
    fn count_protected(
        &mut self,
        dev: u32,
        ino: u64,
        flags: u32,
        delta: i32,
    ) -> Result<(), MapsError> {
        use sandbox_common::MAX_INODE_RULES;
        let key = inode_key(POLICY_ID_ANY, dev, ino);
        let mut value = self.inodes.get(&key, 0).unwrap_or_default();
        value.next_node = value.next_node.saturating_add_signed(delta);
        value.flags |= flags & (RULE_DENY_READ | RULE_DENY_WRITE | RULE_DENY_EXEC | RULE_DENY_UNIX);
        if value.next_node == 0 {
            let _ = self.inodes.remove(&key);
            return Ok(());
        }
        self.inodes
            .insert(key, value, 0)
            .map_err(insert_error(MAP_INODE_RULES, MAX_INODE_RULES))
    }

    /// Removes every rule of one generation (best effort: a leftover entry of an unreferenced
    /// generation is inert, because no cgroup points at its id). When `written` is the policy
    /// this process wrote under that id, only its own keys are touched, in proportion to the
    /// policy; otherwise (a generation an earlier daemon wrote) every key of every rule map is
    /// read to find them.
    fn remove_rules(&mut self, policy_id: u32, written: Option<Written>) {
        match written {
            Some((id, policy)) if id == policy_id => self.remove_written(policy_id, policy),
            _ => self.sweep_rules(policy_id),
        }
    }

    fn remove_written(&mut self, policy_id: u32, policy: &CompiledPolicy) {
        let mut others = Vec::with_capacity(policy.inode_rules.len());
        for (&(dev, ino), value) in &policy.inode_rules {
            let key = inode_key(policy_id, dev, ino);
            if value.flags & RULE_TREE == 0 {
                others.push(key);
            } else if self.inodes.remove(&key).is_ok() {
                // Counted only if it was written (a failed attach stops part way).
                let _ = self.count_protected(dev, ino, 0, -1);
            }
        }
        batch::remove_all(&mut self.inodes, &others);
        let names: Vec<NameKey> = policy
            .name_rules
            .keys()
            .map(|k| name_key(policy_id, k))
            .collect();
        batch::remove_all(&mut self.names, &names);
        for (scope, cidr) in policy.net_rules.keys() {
            let _ = self.net.remove(&net_key(policy_id, *scope, cidr));
        }
        let binaries: Vec<InodeKey> = policy
            .net_binaries
            .keys()
            .map(|&(dev, ino)| inode_key(policy_id, dev, ino))
            .collect();
        batch::remove_all(&mut self.binaries, &binaries);
        let binary_names: Vec<NameKey> = policy
            .net_binary_names
            .keys()
            .map(|k| name_key(policy_id, k))
            .collect();
        batch::remove_all(&mut self.binary_names, &binary_names);
    }

    fn sweep_rules(&mut self, policy_id: u32) {
        fn sweep<K: aya::Pod, V: aya::Pod>(
            map: &mut HashMap<MapData, K, V>,
            of_policy: impl Fn(&K) -> bool,
        ) {
            let keys: Vec<K> = map
                .keys()
                .filter_map(Result::ok)
                .filter(|k| of_policy(k))
                .collect();
            for k in keys {
                let _ = map.remove(&k);
            }
        }
        let trees: Vec<InodeKey> = self
            .inodes
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, v)| k.policy_id == policy_id && v.flags & RULE_TREE != 0)
            .map(|(k, _)| k)
            .collect();
        for k in trees {
            let _ = self.count_protected(k.dev, k.ino, 0, -1);
        }
        sweep(&mut self.inodes, |k| k.policy_id == policy_id);
        sweep(&mut self.names, |k| k.policy_id == policy_id);
        sweep(&mut self.binaries, |k| k.policy_id == policy_id);
        sweep(&mut self.binary_names, |k| k.policy_id == policy_id);
        let net_keys: Vec<Key<NetKey>> = self
            .net
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.data().policy_id == policy_id)
            .collect();
        for k in net_keys {
            let _ = self.net.remove(&k);
        }
    }
}
