//! The server's settings, under Kinto's names so a Kinto operator's configuration carries
//! over (`paginate_by`, `bucket_create_principals`, ...).

use serde::{Deserialize, Serialize};

/// Kinto-compatible settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KintoSettings {
    /// Where objects are stored (Kinto's `storage_url`): `sqlite:PATH` or `postgres://...`;
    /// default `sqlite:<data_dir>/settings.db`. Read by the binary, not by the server.
    pub storage_url: Option<String>,
    /// Most connections to a PostgreSQL database per process (Kinto's `storage_pool_size`;
    /// not used for SQLite). Read by the binary.
    pub storage_pool_size: usize,
    /// Page size of list endpoints (`Next-Page` beyond it); none = `storage_max_fetch_size`.
    pub paginate_by: Option<usize>,
    /// Most objects a list returns in one page, whatever `paginate_by` or `_limit` say.
    pub storage_max_fetch_size: usize,
    /// Serve `POST /v1/__flush__`, which deletes everything (tests only).
    pub flush_endpoint_enabled: bool,
    /// Who may create an account.
    #[serde(deserialize_with = "principals")]
    pub account_create_principals: Vec<String>,
    /// Who may read and change every account (administrators).
    #[serde(deserialize_with = "principals")]
    pub account_write_principals: Vec<String>,
    /// Who may create buckets.
    #[serde(deserialize_with = "principals")]
    pub bucket_create_principals: Vec<String>,
    /// Serve `GET /v1/permissions`.
    pub experimental_permissions_endpoint: bool,
    /// Keep each bucket's history at `/v1/buckets/{bid}/history` (Kinto's history plugin,
    /// which Remote Settings runs and Kinto Admin reads): one more stored entry per write.
    pub history_enabled: bool,
    /// Most requests in one `POST /v1/batch`.
    pub batch_max_requests: usize,
    /// Refuse every write.
    pub readonly: bool,
    /// Largest request body, in bytes (refused with 413 before it is read).
    pub max_request_bytes: usize,
    /// Seconds clients should wait before their next request, sent as `Backoff` on every
    /// answer while set (Kinto's `backoff`): for shedding load during an incident.
    pub backoff: Option<u64>,
    /// `Retry-After` of 503 answers, in seconds (Kinto's `retry_after_seconds`).
    pub retry_after_seconds: u64,
    /// Directory where attachments are stored (kinto-attachment's `base_path`); none turns
    /// attachments off. The binary sets `<data_dir>/attachments`.
    pub attachment_base_path: Option<String>,
    /// URL clients prepend to an attachment's `location`; default
    /// `<scheme>://<host>/attachments/` of the request.
    pub attachment_base_url: Option<String>,
    /// Largest attachment, in bytes.
    pub attachment_max_bytes: usize,
    /// Keep an attachment's file when its record, collection or bucket is deleted or the
    /// attachment replaced (kinto-attachment's `keep_old_files`). On by default, as Remote
    /// Settings runs it: the review workflow's preview and published copies of a record
    /// point at the same file, and clients may still hold an older `location`.
    pub attachment_keep_old_files: bool,
    /// `Cache-Control: max-age` of `monitor/changes` and changesets asked with
    /// `_expected=0` (or a `9999…` cache-bust): their content may change at any write.
    pub record_cache_minimum_expires_seconds: u64,
    /// `Cache-Control: max-age` of those asked with a real `_expected` timestamp, whose
    /// content never changes.
    pub record_cache_maximum_expires_seconds: u64,
    /// A directory of Kinto Admin's built files (`npm run build:kinto-single`), served at
    /// `/v1/admin/` as Kinto's admin plugin serves them; none serves no console.
    pub admin_dir: Option<String>,
}

/// A list of principals (or of any words, such as CORS origins): a sequence, or one string
/// separated by spaces, commas or new lines, as Kinto reads them (`SYNCSTACK_SETTINGS_BUCKET_CREATE_PRINCIPALS="system.Authenticated account:admin"`).
pub fn principals<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Given::deserialize(deserializer)? {
        Given::List(list) => list,
        Given::Text(text) => text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl Default for KintoSettings {
    fn default() -> Self {
        KintoSettings {
            storage_url: None,
            storage_pool_size: 10,
            paginate_by: None,
            storage_max_fetch_size: 10_000,
            flush_endpoint_enabled: false,
            account_create_principals: vec!["system.Everyone".into()],
            account_write_principals: Vec::new(),
            bucket_create_principals: vec!["system.Authenticated".into()],
            experimental_permissions_endpoint: false,
            history_enabled: true,
            batch_max_requests: 25,
            readonly: false,
            max_request_bytes: 1024 * 1024,
            backoff: None,
            retry_after_seconds: 30,
            attachment_base_path: None,
            attachment_base_url: None,
            attachment_max_bytes: 25 * 1024 * 1024,
            attachment_keep_old_files: true,
            record_cache_minimum_expires_seconds: 60,
            record_cache_maximum_expires_seconds: 3600,
            admin_dir: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_a_list_or_kinto_text() {
        let parsed: KintoSettings = serde_json::from_value(serde_json::json!({
            "bucket_create_principals": "system.Authenticated  account:admin,group:x\naccount:b",
            "account_write_principals": ["account:admin"],
        }))
        .unwrap();
        assert_eq!(
            parsed.bucket_create_principals,
            [
                "system.Authenticated",
                "account:admin",
                "group:x",
                "account:b"
            ]
        );
        assert_eq!(parsed.account_write_principals, ["account:admin"]);
        assert_eq!(parsed.account_create_principals, ["system.Everyone"]);
    }
}
