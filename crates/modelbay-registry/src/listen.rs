//! Hints that the event log has grown: PostgreSQL `LISTEN` on one dedicated connection. A
//! hint is only a wake-up; followers read the events table by sequence number, and poll as
//! well, so a notification lost (a dropped connection, a restart) only delays a change.

use std::{sync::Arc, time::Duration};

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

/// The channel the events table's trigger notifies.
const CHANNEL: &str = "modelbay_events";

/// Wakes `hints` on every notification, for as long as the process lives; reconnects after a
/// lost connection (and wakes then too: notifications sent meanwhile are gone).
pub(crate) async fn listen(url: Arc<str>, hints: Arc<Notify>) {
    let mut failing = false;
    loop {
        match PgListener::connect(&url).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    if failing {
                        tracing::info!("listening for registry events again");
                        failing = false;
                    }
                    hints.notify_one();
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(_)) => hints.notify_one(),
                            // The connection was lost; the next call reconnects.
                            Ok(None) => hints.notify_one(),
                            Err(e) => {
                                tracing::warn!(error = %e, "the registry event listener failed; reconnecting");
                                break;
                            }
                        }
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot listen for registry events; polling meanwhile");
                }
                Err(_) => {}
            },
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot connect to listen for registry events; polling meanwhile");
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
