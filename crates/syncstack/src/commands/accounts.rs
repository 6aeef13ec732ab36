//! `syncstack accounts`: the built-in identity provider's accounts, and their Firefox side
//! in the accounts service.
//!
//! An account named by an email address and given a password gets both: an identity
//! provider account (for the CLI's password login) and an accounts-service account with
//! the same uid (for Firefox's onepw sign-in), so the token server sees one user whichever
//! way it signs in. The password is stretched here as a client would; the accounts service
//! never sees it. ADR 0012 says why.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use accounts::AccountsService;
use accounts::store::AccountStore;
use accounts::store::postgres::PostgresAccountStore;
use accounts::store::sqlite::SqliteAccountStore;
use anyhow::Context;
use identity::IdentityProvider;

use crate::backends::DatabaseUrl;
use crate::cli::AccountsCommand;
use crate::config::{Service, Settings};

/// Opens the identity provider of the data directory (creating its key and database).
pub fn open_identity(settings: &Settings) -> anyhow::Result<IdentityProvider> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    Ok(IdentityProvider::open(
        &settings.data_dir,
        &settings.identity.issuer,
    )?)
}

/// Opens the accounts service of the data directory (or the configured database),
/// signing with `idp`'s key.
pub async fn open_accounts(
    settings: &Settings,
    public_url: &url::Url,
    idp: IdentityProvider,
) -> anyhow::Result<AccountsService> {
    let config = &settings.accounts;
    let store: Arc<dyn AccountStore> = match config.database_url.as_deref() {
        Some(url) if postgres_support::is_postgres_url(url) => Arc::new(
            PostgresAccountStore::open(url, config.database_pool_max_size)
                .await
                .context("opening the accounts database (accounts.database_url)")?,
        ),
        other => {
            let (path, create) = match other {
                Some(url) => match DatabaseUrl::parse(url)
                    .context("accounts.database_url takes sqlite:PATH or postgres://...")?
                {
                    DatabaseUrl::Sqlite { path, create } => (path, create),
                },
                None => (settings.data_dir.join("fxa-accounts.db"), true),
            };
            Arc::new(
                SqliteAccountStore::open(&path, create)
                    .with_context(|| format!("opening the accounts database {}", path.display()))?,
            )
        }
    };
    AccountsService::new(store, idp, config.clone(), public_url).map_err(anyhow::Error::msg)
}

fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(password)
}

/// Runs one `accounts` command.
pub async fn run(settings: &Settings, command: AccountsCommand) -> anyhow::Result<()> {
    let idp = open_identity(settings)?;
    let firefox = if settings.services.contains(&Service::Accounts) {
        Some(open_accounts(settings, &settings.public_url()?, idp.clone()).await?)
    } else {
        None
    };
    match command {
        AccountsCommand::Add {
            name,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(password_from_stdin()?)
            } else {
                None
            };
            let account = idp.add_account(&name, password.as_deref())?;
            if let (Some(firefox), Some(password), true) = (&firefox, &password, name.contains('@'))
            {
                if let Err(error) = firefox
                    .add_account(
                        &name,
                        password,
                        Some((&account.uid, i64::try_from(account.generation)?)),
                    )
                    .await
                {
                    idp.remove_account(&name)?;
                    anyhow::bail!("creating the Firefox side of {name}: {error:?}");
                }
                println!(
                    "added account {} (uid {}); Firefox can sign in to it",
                    account.name, account.uid
                );
            } else {
                println!("added account {} (uid {})", account.name, account.uid);
            }
        }
        AccountsCommand::List => {
            let accounts = idp.list_accounts()?;
            // Accounts signed up from Firefox have no identity provider account.
            let firefox_accounts = match &firefox {
                Some(firefox) => firefox.list_accounts().await?,
                None => Vec::new(),
            };
            if accounts.is_empty() && firefox_accounts.is_empty() {
                println!("no accounts; add one with `syncstack accounts add NAME`");
            }
            for account in &accounts {
                let password = if account.has_password {
                    "password"
                } else {
                    "no password"
                };
                let linked = firefox_accounts.iter().any(|f| f.uid == account.uid);
                println!(
                    "{:<24} uid {}  generation {}  {password}{}",
                    account.name,
                    account.uid,
                    account.generation,
                    if linked { "  firefox" } else { "" }
                );
            }
            for account in firefox_accounts
                .iter()
                .filter(|f| !accounts.iter().any(|a| a.uid == f.uid))
            {
                println!(
                    "{:<24} uid {}  generation {}  firefox only (signed up from Firefox)",
                    account.email, account.uid, account.generation
                );
            }
        }
        AccountsCommand::Remove { name } => {
            let firefox_removed = match &firefox {
                Some(firefox) => firefox.remove_account(&name).await?,
                None => false,
            };
            if !idp.remove_account(&name)? && !firefox_removed {
                anyhow::bail!("no account named {name:?}");
            }
            println!("removed account {name}");
        }
        AccountsCommand::Passwd { name } => {
            // As at Mozilla Accounts, a password change moves the account's generation, so
            // the token server refuses access tokens issued before it.
            idp.set_password(&name, &password_from_stdin()?)?;
            let account = idp.bump_generation(&name)?;
            println!(
                "password of {name} set; generation is now {}",
                account.generation
            );
            if let Some(firefox) = &firefox
                && let Some(linked) = firefox.account(&name).await?
            {
                firefox
                    .align_generation(&linked.uid, i64::try_from(account.generation)?)
                    .await?;
                // The server cannot re-wrap kB without the old password; a change that
                // keeps the synced data is made by the client (password/change/*).
                eprintln!(
                    "note: the Firefox sign-in password of {name} is unchanged; it is changed by a client that knows the old one"
                );
            }
        }
        AccountsCommand::Devices { name } => {
            let firefox = firefox.context("the accounts service is not in `services`")?;
            let account = firefox
                .account(&name)
                .await?
                .with_context(|| format!("no Firefox account {name:?}"))?;
            let devices = firefox.devices(&account.uid).await?;
            if devices.is_empty() {
                println!("no devices signed in to {name}");
            }
            for device in devices {
                println!(
                    "{}  {:<8} {}  last seen {}",
                    device.id,
                    device.device_type,
                    device.name,
                    device.last_access_at / 1000
                );
            }
        }
        AccountsCommand::Token {
            name,
            scope,
            duration,
        } => {
            println!(
                "{}",
                idp.issue_token(&name, &scope, Duration::from_secs(duration))?
            );
        }
    }
    Ok(())
}
