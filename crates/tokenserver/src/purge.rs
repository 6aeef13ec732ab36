//! Purging replaced users: their data is deleted from their old node, then their record.
//!
//! When a user's client state changes, or their node is removed, they get a new uid and
//! their old uid's data stays on the old node, unreadable (it is encrypted with keys the
//! user no longer has). The purge sends the old node a Hawk-signed `DELETE /1.5/{uid}` with a
//! token minted from the shared secret, exactly as a client would, and removes the record
//! once the node confirms. Records on a downed node are kept for a later run; records whose
//! node was removed are dropped, since there is nothing left to ask.

use std::collections::HashMap;
use std::time::Duration;

use sync_proto::hawk::{self, RequestTarget};
use sync_proto::token::{self, MasterSecret, TokenPayload};
use tokenserver_store::{TokenStore, TokenStoreError, UserRecord};

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeOutcome {
    /// The node deleted the data and the record is gone.
    Deleted,
    /// The node was removed; only the record was deleted.
    RecordOnly,
    /// The node is down; kept for a later run.
    SkippedDowned,
    /// The node refused or could not be reached; kept.
    Failed(String),
}

/// Totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Records whose data was deleted.
    pub deleted: u64,
    /// Records dropped without a node to ask.
    pub record_only: u64,
    /// Records kept because their node is down.
    pub skipped_downed: u64,
    /// Records kept because the node did not confirm.
    pub failed: u64,
}

/// Purges up to `limit` records replaced more than `grace` ago. `progress` is called once
/// with the number of records found, then once per record.
pub async fn purge_replaced(
    store: &dyn TokenStore,
    secret: &MasterSecret,
    grace: Duration,
    limit: u32,
    mut progress: impl FnMut(PurgeProgress<'_>),
) -> Result<PurgeReport, TokenStoreError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let before = now_ms - grace.as_millis() as i64;
    let records = store.replaced_users(before, limit).await?;
    progress(PurgeProgress::Found(records.len()));
    let downed: HashMap<String, bool> = store
        .list_nodes()
        .await?
        .into_iter()
        .map(|node| (node.url, node.downed))
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| TokenStoreError::Backend(format!("HTTP client: {e}")))?;
    let mut report = PurgeReport::default();
    for record in &records {
        let outcome = match &record.node {
            None => PurgeOutcome::RecordOnly,
            Some(node) if downed.get(node).copied().unwrap_or(false) => PurgeOutcome::SkippedDowned,
            Some(node) => delete_from_node(&http, secret, node, record.uid).await,
        };
        match &outcome {
            PurgeOutcome::Deleted => {
                store.delete_user_record(record.uid).await?;
                report.deleted += 1;
            }
            PurgeOutcome::RecordOnly => {
                store.delete_user_record(record.uid).await?;
                report.record_only += 1;
            }
            PurgeOutcome::SkippedDowned => report.skipped_downed += 1,
            PurgeOutcome::Failed(reason) => {
                tracing::warn!(uid = record.uid, node = record.node.as_deref().unwrap_or(""), %reason, "purge: node did not delete the data");
                report.failed += 1;
            }
        }
        progress(PurgeProgress::Done(record, &outcome));
    }
    Ok(report)
}

/// Progress of a purge run.
#[derive(Debug)]
pub enum PurgeProgress<'a> {
    /// How many records will be processed.
    Found(usize),
    /// One record was processed.
    Done(&'a UserRecord, &'a PurgeOutcome),
}

/// Sends a Hawk-signed `DELETE {node}/1.5/{uid}`; 200 and 404 both mean the data is gone.
async fn delete_from_node(
    http: &reqwest::Client,
    secret: &MasterSecret,
    node: &str,
    uid: u64,
) -> PurgeOutcome {
    let minted = token::mint(secret, &TokenPayload::new(uid, node, 300));
    let url = match url::Url::parse(&format!("{}/1.5/{uid}", node.trim_end_matches('/'))) {
        Ok(url) => url,
        Err(e) => return PurgeOutcome::Failed(format!("node URL {node:?}: {e}")),
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return PurgeOutcome::Failed(format!("node URL {node:?} has no host"));
    };
    let target = RequestTarget {
        method: "DELETE",
        path_and_query: url.path(),
        host,
        port,
    };
    let authorization = hawk::sign_request(&minted.id, minted.key.as_bytes(), &target, None);
    match http
        .delete(url.clone())
        .header("authorization", authorization)
        .send()
        .await
    {
        Ok(response) if response.status().is_success() || response.status().as_u16() == 404 => {
            PurgeOutcome::Deleted
        }
        Ok(response) => PurgeOutcome::Failed(format!("{} answered {}", url, response.status())),
        Err(error) => PurgeOutcome::Failed(format!("{url}: {error}")),
    }
}
