//! What the accounts service keeps, behind the [`AccountStore`] trait.
//!
//! **Invariant:** the trait and its types name no database driver and no HTTP type; each
//! backend turns its driver's errors into [`StoreError`]. Every method is one transaction,
//! so a single-use thing (a key fetch token, an authorization code) is taken by exactly
//! one request however many race for it.
//!
//! Secrets are stored only in forms that are useless to a thief where the protocol allows
//! it: tokens by the SHA-256 of their id, codes and refresh tokens by their SHA-256, the
//! password verifier as [`Verifier`]. What must stay usable is stored as it is: the Hawk
//! key of each token (the MAC check needs it), kA, and for a few minutes the key bundle a
//! key fetch token will return.

pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;

use crate::onepw::{TokenKind, Verifier};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An account with this address already exists.
    #[error("an account with this address already exists")]
    AccountExists,
    /// `create_account` with `first_only`, and an account exists.
    #[error("an account exists already and only the first may sign up")]
    NotFirst,
    /// The database asked for the transaction to be run again, and it still failed.
    #[error("the accounts database is busy")]
    Conflict,
    /// The database failed; the detail is for the log.
    #[error("accounts database: {0}")]
    Backend(String),
}

/// An account.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    /// 32 lowercase hex characters, the OAuth `sub`; never changes.
    pub uid: String,
    /// The address as typed at sign-up: the salt of the client's stretch.
    pub email: String,
    /// The address lowercased, unique.
    pub normalized_email: String,
    /// The password verifier and wrapped `wrapKb`.
    pub verifier: Verifier,
    /// The account's kA (onepw's class A key), random.
    pub ka: [u8; 32],
    /// Milliseconds of the last password change (`fxa-generation`).
    pub generation: i64,
    /// Milliseconds of the last change of kB (sign-up or reset); the `X-KeyID` prefix.
    pub keys_changed_at: i64,
    /// Milliseconds of sign-up.
    pub created_at: i64,
    /// The profile's display name.
    pub display_name: Option<String>,
}

/// A token handed to a client: a session, a key fetch or a password change.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// SHA-256 of the token id.
    pub id_hash: [u8; 32],
    /// What it is.
    pub kind: TokenKind,
    /// Whose it is.
    pub uid: String,
    /// Its Hawk key.
    pub auth_key: [u8; 32],
    /// Key fetch tokens only: `kA ‖ wrapKb`, already bundled under the token's key.
    pub key_bundle: Option<Vec<u8>>,
    /// Milliseconds of creation.
    pub created_at: i64,
    /// The client's `User-Agent`, for the list of attached clients.
    pub user_agent: Option<String>,
}

/// An OAuth authorization code, waiting for its exchange.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// The account.
    pub uid: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The client's `keys_jwe`, handed back untouched.
    pub keys_jwe: Option<String>,
    /// Whether a refresh token comes with the access token.
    pub offline: bool,
    /// Seconds of the sign-in that authorized it.
    pub auth_at: i64,
    /// Milliseconds after which it is refused.
    pub expires_at: i64,
}

/// An OAuth refresh token.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// The account.
    pub uid: String,
    /// The client.
    pub client_id: String,
    /// Scopes it may mint access tokens for.
    pub scope: String,
    /// Milliseconds of creation.
    pub created_at: i64,
}

/// A registered device (one per session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// 32 lowercase hex characters.
    pub id: String,
    /// The account.
    pub uid: String,
    /// SHA-256 of the id of the session that registered it.
    pub session_id_hash: Option<[u8; 32]>,
    /// Its name, as the user sees it.
    pub name: String,
    /// `desktop`, `mobile`, ...
    pub device_type: String,
    /// Web Push endpoint, stored but never called.
    pub push_callback: Option<String>,
    /// Web Push public key.
    pub push_public_key: Option<String>,
    /// Web Push auth secret.
    pub push_auth_key: Option<String>,
    /// `availableCommands`, as JSON.
    pub available_commands: String,
    /// Milliseconds of registration.
    pub created_at: i64,
    /// Milliseconds of the last update.
    pub last_access_at: i64,
}

/// The accounts service's storage.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account and, in the same transaction, its first tokens. With
    /// `first_only`, only if there is no account yet (checked in the same transaction, so
    /// two racing sign-ups cannot both be first).
    async fn create_account(
        &self,
        account: &AccountRecord,
        tokens: &[TokenRecord],
        first_only: bool,
    ) -> Result<(), StoreError>;
    /// The account with this lowercased address.
    async fn account_by_email(&self, normalized: &str)
    -> Result<Option<AccountRecord>, StoreError>;
    /// The account with this uid.
    async fn account_by_uid(&self, uid: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account, by address.
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    /// How many accounts exist.
    async fn count_accounts(&self) -> Result<u64, StoreError>;
    /// Deletes an account with everything it owns; false if there was none.
    async fn delete_account(&self, uid: &str) -> Result<bool, StoreError>;
    /// Replaces the verifier and generation (and with `keys_changed`, keys_changed_at, to
    /// the new generation), revokes every token of the account (sessions and their devices
    /// included) and stores `tokens` instead, in one transaction.
    async fn change_password(
        &self,
        uid: &str,
        verifier: &Verifier,
        generation: i64,
        keys_changed: bool,
        tokens: &[TokenRecord],
    ) -> Result<(), StoreError>;
    /// Sets the account's generation (to align it with a linked account's), keeping
    /// keys_changed_at no later than it.
    async fn set_generation(&self, uid: &str, generation: i64) -> Result<(), StoreError>;
    /// Stores tokens.
    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> Result<(), StoreError>;
    /// The token of this kind with this id hash, left in place.
    async fn token(
        &self,
        id_hash: &[u8; 32],
        kind: TokenKind,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Deletes and returns the token: only one caller ever gets it.
    async fn take_token(
        &self,
        id_hash: &[u8; 32],
        kind: TokenKind,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Deletes a token (and the device a session registered); false if there was none.
    async fn delete_token(&self, id_hash: &[u8; 32], kind: TokenKind) -> Result<bool, StoreError>;
    /// The account's sessions.
    async fn sessions(&self, uid: &str) -> Result<Vec<TokenRecord>, StoreError>;
    /// Deletes one-time tokens older than `created_before` and codes expired at `now`.
    async fn purge_expired(&self, created_before: i64, now: i64) -> Result<u64, StoreError>;
    /// Stores an authorization code.
    async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError>;
    /// Deletes and returns the code: a code is exchanged once.
    async fn take_code(&self, code_hash: &[u8; 32]) -> Result<Option<CodeRecord>, StoreError>;
    /// Stores a refresh token.
    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError>;
    /// The refresh token with this hash.
    async fn refresh(&self, token_hash: &[u8; 32]) -> Result<Option<RefreshRecord>, StoreError>;
    /// Deletes a refresh token; false if there was none.
    async fn delete_refresh(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError>;
    /// The account's refresh tokens.
    async fn refresh_tokens(&self, uid: &str) -> Result<Vec<RefreshRecord>, StoreError>;
    /// Registers the device of a session, or updates the one it has (by session or id).
    async fn upsert_device(&self, device: &DeviceRecord) -> Result<DeviceRecord, StoreError>;
    /// The account's devices.
    async fn devices(&self, uid: &str) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Deletes a device and the session that registered it; false if there was none.
    async fn delete_device(&self, uid: &str, id: &str) -> Result<bool, StoreError>;
}
