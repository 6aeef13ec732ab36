//! `syncstack client login --account EMAIL`: signing in through the accounts service, as
//! Firefox does, so the CLI and Firefox use the account's one key (kB) and see the same
//! data; and the migration of a login saved before, when the CLI signed in through the
//! identity provider with a key of its own.
//!
//! Such an old login holds a kB the CLI generated, which encrypts whatever it stored; the
//! account's kB (made when the account was) is another. Both cannot be the user's key at
//! the token server, so `--migrate` keeps the one the stored data is under: when the old
//! key still gets a token, it becomes the account's key (a password change keeping the
//! password, `keysChanged`); otherwise nothing is stored under it and the account's key
//! is used. The old login file is kept beside the new one either way.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sync_client::ClientError;
use sync_client::accounts::{AccountsClient, SignedIn};

use super::profile::{Login, Profile};

/// The accounts service at `url`: its auth API (`…/v1`) as given, or the one announced
/// at that origin.
pub async fn accounts_at(http: &reqwest::Client, url: &str) -> anyhow::Result<AccountsClient> {
    let trimmed = url.trim_end_matches('/');
    if trimmed.ends_with("/v1") {
        return Ok(AccountsClient {
            auth_url: trimmed.to_owned(),
            http: http.clone(),
        });
    }
    AccountsClient::discover(http, trimmed)
        .await?
        .with_context(|| {
            format!("no accounts service at {url} (no /.well-known/fxa-client-configuration)")
        })
}

/// What the caller of [`login`] asked for.
pub struct OnepwLogin<'a> {
    /// Where the login is saved.
    pub path: &'a Path,
    /// The token server.
    pub token_server: &'a str,
    /// The accounts service.
    pub accounts: AccountsClient,
    /// The address.
    pub email: &'a str,
    /// The password.
    pub password: &'a str,
    /// Whether a saved identity-provider login of this address may be migrated.
    pub migrate: bool,
    /// Whether the client is Tier 2.
    pub tier2: bool,
}

/// Signs in, migrating an older login of the same address when asked, and saves the login.
pub async fn login(request: OnepwLogin<'_>) -> anyhow::Result<()> {
    let OnepwLogin {
        path,
        token_server,
        accounts,
        email,
        password,
        migrate,
        tier2,
    } = request;
    let saved = Profile::load(path).ok();
    let mut signed = accounts.sign_in(email, password).await?;
    let mut replaced = None;
    if let Some(old) = saved.filter(|old| old.kb_bytes().ok().as_deref() != Some(&signed.kb[..])) {
        if own_key_of(&old, email, token_server) {
            if !migrate {
                anyhow::bail!(
                    "the login saved in {} signed in to {email} through the identity provider with a key of its own, \
                     which is not the account's key Firefox uses; run the same command with --migrate to move it \
                     (its data is kept), or use another --profile",
                    path.display()
                );
            }
            signed = migrate_key(&old, &accounts, email, password, signed, tier2).await?;
        }
        replaced = Some(keep_copy(path)?);
    }
    let profile = Profile {
        token_server: token_server.to_owned(),
        login: Login::Accounts {
            accounts_url: accounts.auth_url.clone(),
            email: signed.email.clone(),
            refresh_token: signed.refresh_token.clone(),
        },
        kb: hex::encode(signed.kb),
        keys_changed_at: signed.keys_changed_at,
    };
    let client = profile.client(tier2)?;
    client.ensure_ready().await?;
    profile.save(path)?;
    let endpoint = client.storage().endpoint().await?;
    println!(
        "logged in to {} through the accounts service: storage at {endpoint}",
        signed.email
    );
    if let Some(copy) = replaced {
        println!(
            "the previous login (with its key) is kept in {}",
            copy.display()
        );
    }
    Ok(())
}

/// Whether `old` is this address's identity-provider login on this token server.
fn own_key_of(old: &Profile, email: &str, token_server: &str) -> bool {
    let same_server = old.server_base_url() == super::base_url(token_server).trim_end_matches('/');
    matches!(&old.login, Login::Password { account, .. } if account.eq_ignore_ascii_case(email))
        && same_server
}

/// Keeps the key the stored data is under: the old login's when the token server still
/// accepts it (the account then takes it), else the account's.
async fn migrate_key(
    old: &Profile,
    accounts: &AccountsClient,
    email: &str,
    password: &str,
    signed: SignedIn,
    tier2: bool,
) -> anyhow::Result<SignedIn> {
    let live = match old.client(tier2)?.storage().endpoint().await {
        Ok(_) => true,
        // The key is current; only the identity provider's generation lags the account's.
        Err(ClientError::TokenServer { status, .. }) if status == "invalid-generation" => true,
        Err(ClientError::TokenServer { status, .. }) => {
            println!(
                "the saved key holds no current data here (the token server says {status}); using the account's key"
            );
            false
        }
        Err(other) => {
            return Err(anyhow::Error::new(other).context("checking the saved login's key"));
        }
    };
    if !live {
        return Ok(signed);
    }
    let kb: [u8; 32] = old
        .kb_bytes()?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the saved kB is not 32 bytes"))?;
    let _ = accounts.destroy_refresh_token(&signed.refresh_token).await;
    accounts
        .replace_kb(email, password, &kb)
        .await
        .context("making the saved key the account's key")?;
    let again = accounts.sign_in(email, password).await?;
    if again.kb != kb {
        anyhow::bail!("the accounts service did not keep the migrated key");
    }
    println!(
        "the key your data is stored under is now {email}'s key; Firefox signs in to it again to sync"
    );
    Ok(again)
}

/// Copies the login at `path` to `<path>.<unix time>.bak` (mode 0600, as the original).
fn keep_copy(path: &Path) -> anyhow::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{stamp}.bak"));
    let copy = PathBuf::from(name);
    std::fs::copy(path, &copy).with_context(|| format!("keeping a copy in {}", copy.display()))?;
    Ok(copy)
}
