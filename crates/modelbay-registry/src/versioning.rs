//! Aliases (with rollback history), routing policies and the version lifecycle. Every mutation
//! is one transaction that also appends its event.

use chrono::Utc;
use modelbay_core::{ModelName, RoutingPolicy, Target};
use serde_json::json;
use sqlx::{AnyConnection, Row};

use crate::{
    db::{get_time, get_u32, time, to_json, Tx},
    events::{self, NewEvent},
    metadata::MetadataStore,
    AliasRecord, Digest, Error, EventKind, Result, RoutingSnapshot,
};

/// Starts a write transaction. The first statement writes (touching the model row), so SQLite
/// takes the write lock at once and concurrent writers wait instead of failing; it also tells us
/// whether the model exists.
pub(crate) async fn begin_write<'a>(store: &'a MetadataStore, model: &ModelName) -> Result<Tx<'a>> {
    let mut tx = store.db.begin_write().await?;
    let touched = sqlx::query("UPDATE models SET updated_at = $1 WHERE name = $2")
        .bind(time(Utc::now()))
        .bind(model.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if touched == 0 {
        return Err(Error::ModelNotFound(model.to_string()));
    }
    Ok(tx)
}

/// Fails unless `version` exists and is not archived.
pub(crate) async fn require_servable(
    tx: &mut Tx<'_>,
    model: &ModelName,
    version: u32,
) -> Result<()> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT archived_at FROM versions WHERE model = $1 AND version = $2")
            .bind(model.as_str())
            .bind(i64::from(version))
            .fetch_optional(&mut **tx)
            .await?;
    match row {
        None => Err(Error::VersionNotFound {
            model: model.to_string(),
            version,
        }),
        Some((Some(_),)) => Err(Error::Conflict(format!(
            "version {version} of model '{model}' is archived"
        ))),
        Some((None,)) => Ok(()),
    }
}

async fn alias_version(tx: &mut Tx<'_>, model: &ModelName, alias: &str) -> Result<Option<u32>> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM aliases WHERE model = $1 AND alias = $2")
            .bind(model.as_str())
            .bind(alias)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(version.map(|v| v as u32))
}

pub(crate) async fn write_alias(
    tx: &mut Tx<'_>,
    model: &ModelName,
    alias: &str,
    version: u32,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO aliases (model, alias, version, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (model, alias) DO UPDATE SET version = $3, updated_at = $4",
    )
    .bind(model.as_str())
    .bind(alias)
    .bind(i64::from(version))
    .bind(time(Utc::now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl MetadataStore {
    /// Every alias of `model` (or of every model), with its rollback history.
    pub(crate) async fn aliases(&self, model: Option<&ModelName>) -> Result<Vec<AliasRecord>> {
        let rows = sqlx::query(
            "SELECT model, alias, version, updated_at FROM aliases
             WHERE $1 IS NULL OR model = $1 ORDER BY model, alias",
        )
        .bind(model.map(ModelName::as_str))
        .fetch_all(&self.db.pool)
        .await?;
        let history: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT model, alias, version FROM alias_history WHERE $1 IS NULL OR model = $1 ORDER BY seq DESC",
        )
        .bind(model.map(ModelName::as_str))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let (m, a): (String, String) = (row.try_get("model")?, row.try_get("alias")?);
                let history = history
                    .iter()
                    .filter(|(hm, ha, _)| *hm == m && *ha == a)
                    .map(|(_, _, v)| *v as u32)
                    .collect();
                Ok(AliasRecord {
                    version: get_u32(row, "version")?,
                    updated_at: get_time(row, "updated_at")?,
                    model: m,
                    alias: a,
                    history,
                })
            })
            .collect()
    }

    /// Points `alias` at `version`, remembering where it pointed before.
    pub(crate) async fn set_alias(
        &self,
        model: &ModelName,
        alias: &str,
        version: u32,
        actor: &str,
    ) -> Result<()> {
        let mut tx = begin_write(self, model).await?;
        require_servable(&mut tx, model, version).await?;
        let before = alias_version(&mut tx, model, alias).await?;
        if before == Some(version) {
            return Ok(()); // already there: no move, no event
        }
        if let Some(previous) = before {
            sqlx::query("INSERT INTO alias_history (model, alias, version) VALUES ($1, $2, $3)")
                .bind(model.as_str())
                .bind(alias)
                .bind(i64::from(previous))
                .execute(&mut *tx)
                .await?;
        }
        write_alias(&mut tx, model, alias, version).await?;
        let before = before.map(|v| json!({ "alias": alias, "version": v }));
        let after = json!({ "alias": alias, "version": version });
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind: EventKind::AliasSet,
                model: model.as_str(),
                before,
                after: Some(after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves `alias` back to the version it pointed at before its last move.
    pub(crate) async fn rollback_alias(
        &self,
        model: &ModelName,
        alias: &str,
        actor: &str,
    ) -> Result<u32> {
        let mut tx = begin_write(self, model).await?;
        let current =
            alias_version(&mut tx, model, alias)
                .await?
                .ok_or_else(|| Error::AliasNotFound {
                    model: model.to_string(),
                    alias: alias.to_owned(),
                })?;
        // The newest history entry that can still serve; archived or deleted ones are dropped.
        let previous = loop {
            let entry: Option<(i64, i64)> = sqlx::query_as(
                "SELECT seq, version FROM alias_history WHERE model = $1 AND alias = $2 ORDER BY seq DESC LIMIT 1",
            )
            .bind(model.as_str())
            .bind(alias)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((seq, version)) = entry else {
                return Err(Error::Conflict(format!(
                    "alias '{alias}' of model '{model}' has no earlier version to roll back to"
                )));
            };
            sqlx::query("DELETE FROM alias_history WHERE seq = $1")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            let version = version as u32;
            if version == current {
                continue; // a step that would not move the alias
            }
            match require_servable(&mut tx, model, version).await {
                Ok(()) => break version,
                Err(Error::VersionNotFound { .. } | Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        };
        write_alias(&mut tx, model, alias, previous).await?;
        let before = json!({ "alias": alias, "version": current });
        let after = json!({ "alias": alias, "version": previous });
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind: EventKind::AliasRollback,
                model: model.as_str(),
                before: Some(before),
                after: Some(after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// Removes an alias (refused while the routing policy names it).
    pub(crate) async fn delete_alias(
        &self,
        model: &ModelName,
        alias: &str,
        actor: &str,
    ) -> Result<()> {
        let mut tx = begin_write(self, model).await?;
        let current =
            alias_version(&mut tx, model, alias)
                .await?
                .ok_or_else(|| Error::AliasNotFound {
                    model: model.to_string(),
                    alias: alias.to_owned(),
                })?;
        if let Some(policy) = policy_in(&mut tx, model).await? {
            if policy
                .targets()
                .any(|t| *t == Target::Alias(alias.to_owned()))
            {
                return Err(Error::Conflict(format!(
                    "alias '{alias}' is used by the routing policy of model '{model}'; change the policy first"
                )));
            }
        }
        for statement in [
            "DELETE FROM aliases WHERE model = $1 AND alias = $2",
            "DELETE FROM alias_history WHERE model = $1 AND alias = $2",
        ] {
            sqlx::query(statement)
                .bind(model.as_str())
                .bind(alias)
                .execute(&mut *tx)
                .await?;
        }
        let before = json!({ "alias": alias, "version": current });
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind: EventKind::AliasDelete,
                model: model.as_str(),
                before: Some(before),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Aliases, policy and newest servable version, read in one transaction so that they are
    /// consistent with each other. `None` when the model does not exist.
    pub(crate) async fn routing_snapshot(
        &self,
        model: &ModelName,
    ) -> Result<Option<RoutingSnapshot>> {
        let mut tx = self.db.begin_write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM models WHERE name = $1")
            .bind(model.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let aliases: Vec<(String, i64)> =
            sqlx::query_as("SELECT alias, version FROM aliases WHERE model = $1")
                .bind(model.as_str())
                .fetch_all(&mut *tx)
                .await?;
        let newest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM versions WHERE model = $1 AND archived_at IS NULL",
        )
        .bind(model.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let policy = policy_in(&mut tx, model).await?;
        tx.commit().await?;
        Ok(Some(RoutingSnapshot {
            aliases: aliases.into_iter().map(|(a, v)| (a, v as u32)).collect(),
            policy,
            newest: newest.map(|v| v as u32),
        }))
    }

    pub(crate) async fn policy(&self, model: &ModelName) -> Result<Option<RoutingPolicy>> {
        let mut conn = self.db.pool.acquire().await?;
        policy_in(&mut conn, model).await
    }

    /// Sets (or with `None` removes) the routing policy; every target must resolve now.
    pub(crate) async fn set_policy(
        &self,
        model: &ModelName,
        policy: Option<&RoutingPolicy>,
        actor: &str,
    ) -> Result<()> {
        let mut tx = begin_write(self, model).await?;
        if let Some(policy) = policy {
            policy.validate()?;
            for target in policy.targets() {
                match target {
                    Target::Version(v) => require_servable(&mut tx, model, *v).await?,
                    Target::Alias(a) => {
                        alias_version(&mut tx, model, a).await?.ok_or_else(|| {
                            Error::AliasNotFound {
                                model: model.to_string(),
                                alias: a.clone(),
                            }
                        })?;
                    }
                }
            }
        }
        let before = policy_in(&mut tx, model).await?;
        let (kind, after) = match policy {
            Some(policy) => {
                sqlx::query(
                    "INSERT INTO policies (model, policy, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (model) DO UPDATE SET policy = $2, updated_at = $3",
                )
                .bind(model.as_str())
                .bind(to_json(policy))
                .bind(time(Utc::now()))
                .execute(&mut *tx)
                .await?;
                (EventKind::PolicySet, Some(json!(policy)))
            }
            None => {
                if before.is_none() {
                    return Err(Error::Conflict(format!(
                        "model '{model}' has no routing policy"
                    )));
                }
                sqlx::query("DELETE FROM policies WHERE model = $1")
                    .bind(model.as_str())
                    .execute(&mut *tx)
                    .await?;
                (EventKind::PolicyDelete, None)
            }
        };
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind,
                model: model.as_str(),
                before: before.map(|p| json!(p)),
                after,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Archives or deletes a version, refused while an alias or the policy references it.
    /// Returns the version's digest. The blob stays here: it is content-addressed and other
    /// versions may share it (see `Registry::delete_version`).
    pub(crate) async fn retire_version(
        &self,
        model: &ModelName,
        version: u32,
        delete: bool,
        actor: &str,
    ) -> Result<Digest> {
        let mut tx = begin_write(self, model).await?;
        let digest: Option<String> =
            sqlx::query_scalar("SELECT digest FROM versions WHERE model = $1 AND version = $2")
                .bind(model.as_str())
                .bind(i64::from(version))
                .fetch_optional(&mut *tx)
                .await?;
        let digest = Digest::parse(&digest.ok_or_else(|| Error::VersionNotFound {
            model: model.to_string(),
            version,
        })?)?;
        let aliases: Vec<String> =
            sqlx::query_scalar("SELECT alias FROM aliases WHERE model = $1 AND version = $2")
                .bind(model.as_str())
                .bind(i64::from(version))
                .fetch_all(&mut *tx)
                .await?;
        if !aliases.is_empty() {
            return Err(Error::Conflict(format!(
                "version {version} of model '{model}' is referenced by alias {}; move the alias first",
                aliases.join(", ")
            )));
        }
        if let Some(policy) = policy_in(&mut tx, model).await? {
            if policy.targets().any(|t| *t == Target::Version(version)) {
                return Err(Error::Conflict(format!(
                    "version {version} of model '{model}' is referenced by the routing policy; change the policy first"
                )));
            }
        }
        let kind = if delete {
            for statement in [
                "DELETE FROM alias_history WHERE model = $1 AND version = $2",
                "DELETE FROM reference_data WHERE model = $1 AND version = $2",
                "DELETE FROM generation_defaults WHERE model = $1 AND version = $2",
                "DELETE FROM versions WHERE model = $1 AND version = $2",
            ] {
                sqlx::query(statement)
                    .bind(model.as_str())
                    .bind(i64::from(version))
                    .execute(&mut *tx)
                    .await?;
            }
            EventKind::VersionDelete
        } else {
            sqlx::query("UPDATE versions SET archived_at = $3 WHERE model = $1 AND version = $2")
                .bind(model.as_str())
                .bind(i64::from(version))
                .bind(time(Utc::now()))
                .execute(&mut *tx)
                .await?;
            EventKind::VersionArchive
        };
        let before = json!({ "version": version, "digest": digest });
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind,
                model: model.as_str(),
                before: Some(before),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(digest)
    }

    /// Whether any version (of any model, archived or not) is stored as `digest`.
    pub(crate) async fn digest_in_use(&self, digest: &Digest) -> Result<bool> {
        let used: Option<String> =
            sqlx::query_scalar("SELECT digest FROM versions WHERE digest = $1 LIMIT 1")
                .bind(digest.as_str())
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(used.is_some())
    }
}

async fn policy_in(conn: &mut AnyConnection, model: &ModelName) -> Result<Option<RoutingPolicy>> {
    let text: Option<String> = sqlx::query_scalar("SELECT policy FROM policies WHERE model = $1")
        .bind(model.as_str())
        .fetch_optional(conn)
        .await?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| Error::Decode(e.to_string())))
        .transpose()
}
