//! Which version serves a request: pinned number, alias, or the model's default route
//! (routing policy, else `production` alias, else newest version). The per-model routing state
//! is cached and refreshed whenever this process changes it.

use std::collections::HashMap;

use modelbay_core::{ModelName, RoutingPolicy, Target, VersionRef};
use modelbay_registry::{Error as RegistryError, Registry};

use crate::Result;

/// The alias that serves a model's unpinned traffic when it exists.
pub const PRODUCTION: &str = "production";

/// A model's routing state as the registry holds it.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    pub(crate) aliases: HashMap<String, u32>,
    pub(crate) policy: Option<RoutingPolicy>,
    /// Newest version that is not archived.
    pub(crate) newest: Option<u32>,
}

/// Where a request was sent and why.
#[derive(Debug, Clone)]
pub struct Route {
    pub version: u32,
    /// The alias the request came through, if any.
    pub alias: Option<String>,
    /// Shadow target to copy this request to (only for traffic routed by the policy).
    pub shadow: Option<Target>,
}

impl Routes {
    pub(crate) async fn load(registry: &Registry, model: &ModelName) -> Result<Self> {
        let snapshot = registry
            .routing_snapshot(model)
            .await?
            .ok_or_else(|| RegistryError::ModelNotFound(model.to_string()))?;
        Ok(Self {
            aliases: snapshot.aliases.into_iter().collect(),
            policy: snapshot.policy,
            newest: snapshot.newest,
        })
    }

    fn alias(&self, model: &ModelName, alias: &str) -> Result<u32> {
        self.aliases.get(alias).copied().ok_or_else(|| {
            RegistryError::AliasNotFound {
                model: model.to_string(),
                alias: alias.to_owned(),
            }
            .into()
        })
    }

    /// The version a target points at now.
    pub(crate) fn target(&self, model: &ModelName, target: &Target) -> Result<u32> {
        match target {
            Target::Version(v) => Ok(*v),
            Target::Alias(a) => self.alias(model, a),
        }
    }

    /// Routes one request. `sticky` looks up a request header by name.
    pub(crate) fn route(
        &self,
        model: &ModelName,
        version: &VersionRef,
        sticky: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync),
    ) -> Result<Route> {
        let plain = |version, alias: Option<&str>| Route {
            version,
            alias: alias.map(str::to_owned),
            shadow: None,
        };
        match version {
            VersionRef::Number(n) => Ok(plain(*n, None)),
            VersionRef::Alias(a) => Ok(plain(self.alias(model, a)?, Some(a))),
            VersionRef::Default => {
                // An explicit traffic policy wins: `modelbay traffic m production=90 canary=10`
                // must take effect while `production` exists.
                if let Some(policy) = &self.policy {
                    let key = policy.sticky_header.as_deref().and_then(sticky);
                    let target = policy.pick(key.as_deref(), fastrand::u64(..));
                    let version = self.target(model, target)?;
                    let alias = match target {
                        Target::Alias(a) => Some(a.clone()),
                        Target::Version(_) => None,
                    };
                    // Shadowing the version that already answers would compare it with itself.
                    let shadow = policy
                        .shadow
                        .clone()
                        .filter(|s| self.target(model, s).is_ok_and(|v| v != version));
                    return Ok(Route {
                        version,
                        alias,
                        shadow,
                    });
                }
                if let Some(&v) = self.aliases.get(PRODUCTION) {
                    return Ok(plain(v, Some(PRODUCTION)));
                }
                self.newest
                    .map(|v| plain(v, None))
                    .ok_or_else(|| RegistryError::ModelNotFound(model.to_string()).into())
            }
        }
    }

    /// The version that represents a reference without routing a real request: for the default
    /// route under a policy, its heaviest arm (so metadata does not change from call to call).
    pub(crate) fn representative(&self, model: &ModelName, version: &VersionRef) -> Result<u32> {
        match (version, &self.policy) {
            (VersionRef::Default, Some(policy)) => {
                match policy.split.iter().rev().max_by_key(|arm| arm.weight) {
                    Some(heaviest) => self.target(model, &heaviest.target),
                    None => Err(RegistryError::Decode(format!(
                        "the routing policy of '{model}' has no arms"
                    ))
                    .into()),
                }
            }
            _ => Ok(self.route(model, version, &|_| None)?.version),
        }
    }

    /// The versions a reference can be served by: every arm for the default route under a
    /// policy, else the one version it resolves to.
    pub(crate) fn serving(&self, model: &ModelName, version: &VersionRef) -> Result<Vec<u32>> {
        match (version, &self.policy) {
            (VersionRef::Default, Some(policy)) => policy
                .split
                .iter()
                .map(|arm| self.target(model, &arm.target))
                .collect(),
            _ => Ok(vec![self.route(model, version, &|_| None)?.version]),
        }
    }

    /// Versions that serve traffic without being asked for by number: the aliases' and the
    /// policy's targets, and the newest version when it is the default route.
    pub(crate) fn referenced(&self, model: &ModelName) -> Vec<u32> {
        let mut versions: Vec<u32> = self.aliases.values().copied().collect();
        if let Some(policy) = &self.policy {
            versions.extend(policy.targets().filter_map(|t| self.target(model, t).ok()));
        }
        if self.policy.is_none() && !self.aliases.contains_key(PRODUCTION) {
            versions.extend(self.newest);
        }
        versions.sort_unstable();
        versions.dedup();
        versions
    }
}
