//! The service handle: the store, the signing key, the settings and the in-memory guards,
//! plus the operations both the HTTP layer and the CLI need (creating an account, checking
//! a password, handing out tokens).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use identity::IdentityProvider;
use url::Url;

use crate::ApiError;
use crate::limits::{LoginLimiter, NonceCache};
use crate::onepw::{
    ClientKeys, KEYS_NAMESPACE, StretchCost, TokenKeys, TokenKind, Verifier, bundle, id_hash,
};
use crate::settings::AccountsSettings;
use crate::store::{AccountRecord, AccountStore, StoreError, TokenRecord};

/// Why a sign-up was refused.
pub(crate) const SIGN_UP_CLOSED: &str = "sign-up is closed; ask the operator for an account";

/// Longest accepted address, in bytes.
const MAX_EMAIL_LEN: usize = 255;

/// The accounts service. Cloning is cheap; clones share everything.
#[derive(Clone)]
pub struct AccountsService {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn AccountStore>,
    pub(crate) idp: IdentityProvider,
    pub(crate) settings: AccountsSettings,
    /// The public URL without a trailing slash: the `iss` of access tokens.
    pub(crate) base: String,
    /// Parsed public URL, for Hawk's host, port and path prefix.
    pub(crate) public_url: Url,
    /// The token server's base URL: the `aud` of oldsync tokens.
    pub(crate) tokenserver: String,
    pub(crate) nonces: NonceCache,
    pub(crate) limiter: LoginLimiter,
    pub(crate) cost: StretchCost,
}

/// A created account and the tokens handed to its creator.
pub struct NewAccount {
    /// The account as stored.
    pub account: AccountRecord,
    /// The tokens minted with it (hex), in the order asked for.
    pub tokens: Vec<String>,
}

impl fmt::Debug for AccountsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountsService")
            .field("base", &self.inner.base)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl AccountsService {
    /// The service on `store`, signing with `idp`'s key, reachable at `public_url`.
    pub fn new(
        store: Arc<dyn AccountStore>,
        idp: IdentityProvider,
        settings: AccountsSettings,
        public_url: &Url,
    ) -> Result<Self, String> {
        let base = public_url.as_str().trim_end_matches('/').to_owned();
        let tokenserver = match &settings.tokenserver_url {
            Some(url) => {
                Url::parse(url).map_err(|e| format!("accounts.tokenserver_url {url:?}: {e}"))?;
                url.trim_end_matches('/').to_owned()
            }
            None => base.clone(),
        };
        let skew = Duration::from_secs(settings.hawk_skew_secs);
        let limiter = LoginLimiter::new(
            settings.login_failures_per_address,
            settings.login_failures_per_account,
            settings.window(),
        );
        Ok(AccountsService {
            inner: Arc::new(Inner {
                store,
                idp,
                base,
                public_url: public_url.clone(),
                tokenserver,
                nonces: NonceCache::new(skew * 2),
                limiter,
                cost: StretchCost::default(),
                settings,
            }),
        })
    }

    /// The `iss` of the access tokens this service signs: its public URL.
    pub fn issuer(&self) -> &str {
        &self.inner.base
    }

    /// The `aud` of its oldsync access tokens: the token server's URL.
    pub fn sync_audience(&self) -> &str {
        &self.inner.tokenserver
    }

    /// Every account, by address.
    pub async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.inner.store.list_accounts().await
    }

    /// The account with this address, whatever its case.
    pub async fn account(&self, email: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.inner
            .store
            .account_by_email(&email.to_lowercase())
            .await
    }

    /// Deletes the account with this address; false if there was none.
    pub async fn remove_account(&self, email: &str) -> Result<bool, StoreError> {
        match self.account(email).await? {
            Some(account) => self.inner.store.delete_account(&account.uid).await,
            None => Ok(false),
        }
    }

    /// Sets the account's generation to a linked identity account's, after the operator
    /// moved that one (`syncstack accounts passwd`): the token server keeps the newest
    /// generation it saw for the user, so both issuers must carry the same one.
    pub async fn align_generation(&self, uid: &str, generation: i64) -> Result<(), StoreError> {
        self.inner.store.set_generation(uid, generation).await
    }

    /// The account's devices (for `syncstack accounts devices`).
    pub async fn devices(&self, uid: &str) -> Result<Vec<crate::store::DeviceRecord>, StoreError> {
        self.inner.store.devices(uid).await
    }

    /// Creates an account from a password, stretching it as a client would: the
    /// operator's path (`syncstack accounts add`), open whatever `allow_sign_up` says.
    /// With `link`, the account takes that uid and generation, those of a built-in identity
    /// account, so that the token server sees one user with one generation whichever
    /// issuer's token it gets.
    pub async fn add_account(
        &self,
        email: &str,
        password: &str,
        link: Option<(&str, i64)>,
    ) -> Result<NewAccount, ApiError> {
        let keys = ClientKeys::derive(email, password);
        let (uid, generation) = link.unzip();
        let created = self
            .create(email, &keys.auth_pw, uid, &[], None, false)
            .await?;
        match generation {
            Some(generation) => {
                let mut account = created.account;
                self.inner
                    .store
                    .set_generation(&account.uid, generation)
                    .await?;
                account.keys_changed_at = account.keys_changed_at.min(generation);
                account.generation = generation;
                Ok(NewAccount {
                    account,
                    tokens: created.tokens,
                })
            }
            None => Ok(created),
        }
    }

    /// Deletes expired key fetch and password change tokens and authorization codes every
    /// `every`, until the task is aborted. Expired ones are refused anyway; this only
    /// keeps the database small.
    pub fn spawn_purge(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let ttl = service.inner.settings.one_time_token_ttl_secs;
                let now = now_ms();
                let before = now.saturating_sub(i64::try_from(ttl * 1000).unwrap_or(i64::MAX));
                match service.inner.store.purge_expired(before, now).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "purged expired account tokens"),
                    Err(error) => tracing::warn!(%error, "purging expired account tokens failed"),
                }
            }
        })
    }

    /// Whether the HTTP sign-up is open now.
    pub(crate) async fn sign_up_open(&self) -> Result<bool, StoreError> {
        match self.inner.settings.allow_sign_up {
            Some(open) => Ok(open),
            None => Ok(self.inner.store.count_accounts().await? == 0),
        }
    }

    /// Creates an account with a random kA and wrapKb, minting tokens of `mint` with it;
    /// with `first_only`, only if no account exists yet.
    pub(crate) async fn create(
        &self,
        email: &str,
        auth_pw: &[u8],
        uid: Option<&str>,
        mint: &[TokenKind],
        user_agent: Option<String>,
        first_only: bool,
    ) -> Result<NewAccount, ApiError> {
        validate_email(email)?;
        let uid = match uid {
            Some(uid) => uid.to_owned(),
            None => hex::encode(rand::random::<[u8; 16]>()),
        };
        let wrap_kb: [u8; 32] = rand::random();
        let ka: [u8; 32] = rand::random();
        let verifier = self.stretch_new(auth_pw.to_vec(), wrap_kb).await?;
        let now = now_ms();
        let account = AccountRecord {
            uid,
            email: email.to_owned(),
            normalized_email: email.to_lowercase(),
            verifier,
            ka,
            generation: now,
            keys_changed_at: now,
            created_at: now,
            display_name: None,
        };
        let bundle = [ka, wrap_kb].concat();
        let (records, tokens) = self.mint_tokens(&account.uid, mint, Some(bundle), user_agent);
        match self
            .inner
            .store
            .create_account(&account, &records, first_only)
            .await
        {
            Ok(()) => {}
            Err(StoreError::AccountExists) => return Err(ApiError::AccountExists(email.into())),
            Err(StoreError::NotFirst) => return Err(ApiError::NotSupported(SIGN_UP_CLOSED)),
            Err(other) => return Err(other.into()),
        }
        tracing::info!(uid = %account.uid, "created account");
        Ok(NewAccount { account, tokens })
    }

    /// A new verifier on a blocking thread (argon2id takes tens of milliseconds).
    pub(crate) async fn stretch_new(
        &self,
        auth_pw: Vec<u8>,
        wrap_kb: [u8; 32],
    ) -> Result<Verifier, ApiError> {
        let cost = self.inner.cost;
        tokio::task::spawn_blocking(move || Verifier::new(&auth_pw, &wrap_kb, cost))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(ApiError::Internal)
    }

    /// Checks `auth_pw` for `email`, under the rate limits; the account and its wrapKb.
    pub(crate) async fn check_password(
        &self,
        email: &str,
        auth_pw: &[u8],
        address: Option<IpAddr>,
    ) -> Result<(AccountRecord, [u8; 32]), ApiError> {
        let normalized = email.to_lowercase();
        let limiter = &self.inner.limiter;
        limiter
            .check(address, &normalized)
            .map_err(ApiError::Throttled)?;
        let account = self.inner.store.account_by_email(&normalized).await?;
        let cost = self.inner.cost;
        let auth_pw = auth_pw.to_vec();
        let Some(account) = account else {
            tokio::task::spawn_blocking(move || Verifier::burn(&auth_pw, cost))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            limiter.failed(address, &normalized);
            return Err(ApiError::UnknownAccount(email.to_owned()));
        };
        let verifier = account.verifier.clone();
        let checked = tokio::task::spawn_blocking(move || verifier.check(&auth_pw))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(ApiError::Internal)?;
        match checked {
            Some(wrap_kb) => Ok((account, wrap_kb)),
            None => {
                limiter.failed(address, &normalized);
                if account.email != email {
                    Err(ApiError::IncorrectEmailCase(account.email))
                } else {
                    Err(ApiError::IncorrectPassword(account.email))
                }
            }
        }
    }

    /// Fresh tokens of `kinds` for `uid`: the records to store and the hex tokens to give
    /// out, in the same order. A key fetch token carries `key_bundle` (`kA ‖ wrapKb`),
    /// bundled under the token's key.
    pub(crate) fn mint_tokens(
        &self,
        uid: &str,
        kinds: &[TokenKind],
        key_bundle: Option<Vec<u8>>,
        user_agent: Option<String>,
    ) -> (Vec<TokenRecord>, Vec<String>) {
        let now = now_ms();
        kinds
            .iter()
            .map(|&kind| {
                let token: [u8; 32] = rand::random();
                let keys = TokenKeys::derive(&token, kind);
                let record = TokenRecord {
                    id_hash: id_hash(&keys.id),
                    kind,
                    uid: uid.to_owned(),
                    auth_key: keys.auth_key,
                    // Stored already sealed for the client: the database never holds
                    // wrapKb in the clear, even for the minutes the token lives.
                    key_bundle: match (&key_bundle, kind) {
                        (Some(payload), TokenKind::KeyFetch) => {
                            Some(bundle(&keys.bundle_key, KEYS_NAMESPACE, payload))
                        }
                        _ => None,
                    },
                    created_at: now,
                    user_agent: user_agent.clone(),
                };
                (record, hex::encode(token))
            })
            .unzip()
    }
}

/// Checks that `email` looks like an address: one `@` between non-empty parts, no spaces
/// or control characters, at most 255 bytes.
pub(crate) fn validate_email(email: &str) -> Result<(), ApiError> {
    let valid = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::InvalidParameter("email".to_owned()))
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for good in [
            "a@b",
            "first.last+tag@example.org",
            "andr\u{e9}@example.org",
        ] {
            assert!(validate_email(good).is_ok(), "{good}");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        for bad in [
            "",
            "a",
            "@b",
            "a@",
            "a@b@c",
            "a b@c",
            "a@b\n",
            long.as_str(),
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }
}
