//! `syncstack accounts`: the built-in identity provider's accounts.

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context;
use identity::IdentityProvider;

use crate::cli::AccountsCommand;
use crate::config::Settings;

/// Opens the identity provider of the data directory (creating its key and database).
pub fn open_identity(settings: &Settings) -> anyhow::Result<IdentityProvider> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    Ok(IdentityProvider::open(
        &settings.data_dir,
        &settings.identity.issuer,
    )?)
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
pub fn run(settings: &Settings, command: AccountsCommand) -> anyhow::Result<()> {
    let idp = open_identity(settings)?;
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
            println!("added account {} (uid {})", account.name, account.uid);
        }
        AccountsCommand::List => {
            let accounts = idp.list_accounts()?;
            if accounts.is_empty() {
                println!("no accounts; add one with `syncstack accounts add NAME`");
            }
            for account in accounts {
                let password = if account.has_password {
                    "password"
                } else {
                    "no password"
                };
                println!(
                    "{:<24} uid {}  generation {}  {password}",
                    account.name, account.uid, account.generation
                );
            }
        }
        AccountsCommand::Remove { name } => {
            if !idp.remove_account(&name)? {
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
