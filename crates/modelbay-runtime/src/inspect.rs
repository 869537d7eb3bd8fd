//! Read-only management operations: listings of models, versions, aliases, policies and the
//! audit trail, each checked against the caller (scoped keys see only their models).

use modelbay_core::{Access, Caller, ModelName, RoutingPolicy};
use modelbay_registry::{AliasRecord, Event, ModelSummary, VersionRecord};

use crate::{Result, Runtime};

impl Runtime {
    /// Every model the caller may see, with a summary of its versions.
    pub async fn models(&self, caller: &Caller) -> Result<Vec<ModelSummary>> {
        caller.require(Access::Metadata)?;
        let mut models = self.registry.models().await?;
        models.retain(|m| caller.covers(&m.name));
        Ok(models)
    }

    /// Every version of `model`, oldest first.
    pub async fn versions(&self, caller: &Caller, model: &ModelName) -> Result<Vec<VersionRecord>> {
        caller.authorize(Access::Metadata, model)?;
        Ok(self.registry.versions(model).await?)
    }

    /// One version of `model`.
    pub async fn version(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: u32,
    ) -> Result<VersionRecord> {
        caller.authorize(Access::Metadata, model)?;
        Ok(self.registry.version(model, version).await?)
    }

    /// The aliases of `model` (404 for an unknown model).
    pub async fn aliases(&self, caller: &Caller, model: &ModelName) -> Result<Vec<AliasRecord>> {
        caller.authorize(Access::Inspect, model)?;
        let aliases = self.registry.aliases(Some(model)).await?;
        if aliases.is_empty() {
            self.registry.versions(model).await?;
        }
        Ok(aliases)
    }

    /// The routing policy of `model`, if it has one (404 for an unknown model).
    pub async fn policy(
        &self,
        caller: &Caller,
        model: &ModelName,
    ) -> Result<Option<RoutingPolicy>> {
        caller.authorize(Access::Inspect, model)?;
        self.registry.versions(model).await?;
        Ok(self.registry.policy(model).await?)
    }

    /// A page of the audit trail after sequence number `since`: of one model, or (for callers
    /// not limited to some models) of all.
    pub async fn events(
        &self,
        caller: &Caller,
        model: Option<&ModelName>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<Event>> {
        match model {
            Some(model) => caller.authorize(Access::Inspect, model)?,
            None => caller.require_unscoped(Access::Inspect)?,
        }
        Ok(self
            .registry
            .events(model.map(ModelName::as_str), since, limit)
            .await?)
    }
}
