//! Getting storage credentials: an OAuth access token, exchanged at the token server for a
//! token for the user's storage node.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;

use crate::error::ClientError;

/// Where access tokens come from.
#[async_trait]
pub trait AccessTokenSource: Send + Sync {
    /// A current OAuth access token with the Sync scope.
    async fn access_token(&self) -> Result<String, ClientError>;
}

/// A fixed access token (given by the user; it expires when it expires).
pub struct StaticAccessToken(pub String);

#[async_trait]
impl AccessTokenSource for StaticAccessToken {
    async fn access_token(&self) -> Result<String, ClientError> {
        Ok(self.0.clone())
    }
}

/// Logs in to syncstack's identity provider with an account name and password each time a
/// token is needed.
pub struct PasswordLogin {
    /// Base URL of the identity provider (the `/identity/v1/token` endpoint is under it).
    pub url: String,
    /// Account name.
    pub account: String,
    /// Password.
    pub password: String,
    /// HTTP client.
    pub http: reqwest::Client,
}

#[derive(Deserialize)]
struct LoginAnswer {
    access_token: String,
}

#[async_trait]
impl AccessTokenSource for PasswordLogin {
    async fn access_token(&self) -> Result<String, ClientError> {
        let response = self
            .http
            .post(format!(
                "{}/identity/v1/token",
                self.url.trim_end_matches('/')
            ))
            .basic_auth(&self.account, Some(&self.password))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(ClientError::Login(format!(
                "identity provider answered {}",
                response.status()
            )));
        }
        let answer: LoginAnswer = response.json().await?;
        Ok(answer.access_token)
    }
}

/// Credentials for one storage node, as the token server hands them out.
#[derive(Clone, Deserialize)]
pub struct NodeToken {
    /// The Hawk id.
    pub id: String,
    /// The Hawk key.
    pub key: String,
    /// The user's uid on the node.
    pub uid: u64,
    /// `<node>/1.5/<uid>`.
    pub api_endpoint: String,
    /// Lifetime in seconds.
    pub duration: u64,
    /// When it was fetched (not part of the answer).
    #[serde(skip, default = "Instant::now")]
    pub fetched: Instant,
}

impl std::fmt::Debug for NodeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeToken")
            .field("uid", &self.uid)
            .field("api_endpoint", &self.api_endpoint)
            .finish_non_exhaustive()
    }
}

impl NodeToken {
    /// Whether it should be replaced before use (a minute before it expires).
    pub fn is_stale(&self) -> bool {
        self.fetched.elapsed() + Duration::from_secs(60) >= Duration::from_secs(self.duration)
    }
}

/// Fetches node tokens from a token server.
pub struct TokenServerClient {
    /// `https://host/1.0/sync/1.5` or the token server's base URL.
    pub url: String,
    /// `X-KeyID`: `<keys_changed_at>-<client state>`.
    pub key_id: String,
    /// Where access tokens come from.
    pub source: Box<dyn AccessTokenSource>,
    /// HTTP client.
    pub http: reqwest::Client,
}

#[derive(Deserialize)]
struct TokenServerError {
    status: String,
}

impl TokenServerClient {
    /// The full token endpoint.
    fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/1.0/sync/1.5") {
            base.to_owned()
        } else {
            format!("{base}/1.0/sync/1.5")
        }
    }

    /// Asks for a token for this user's node.
    pub async fn fetch(&self) -> Result<NodeToken, ClientError> {
        let bearer = self.source.access_token().await?;
        let response = self
            .http
            .get(self.endpoint())
            .bearer_auth(bearer)
            .header("x-keyid", &self.key_id)
            .send()
            .await?;
        let status = response.status().as_u16();
        if status != 200 {
            let body: Option<TokenServerError> = response.json().await.ok();
            return Err(ClientError::TokenServer {
                http: status,
                status: body.map(|b| b.status).unwrap_or_else(|| "unknown".into()),
            });
        }
        let mut token: NodeToken = response.json().await?;
        token.fetched = Instant::now();
        tracing::debug!(uid = token.uid, endpoint = %token.api_endpoint, "got a storage token");
        Ok(token)
    }
}
