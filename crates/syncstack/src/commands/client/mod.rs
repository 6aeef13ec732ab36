//! `syncstack client`: a Sync client on the command line, on top of the `sync-client` crate.

mod listings;
mod onepw;
mod profile;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngCore;
use serde_json::Value;
use sync_client::keys;
use sync_client::records::new_guid;
use sync_client::tier::AnyClient;

pub use profile::{Login, Profile};

use crate::cli::{ClientArgs, ClientCommand, KeysCommand};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Runs one `client` command.
pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let path = args.profile.clone().unwrap_or_else(Profile::default_path);
    if let ClientCommand::Login { .. } = &args.command {
        return login(&path, args).await;
    }
    let profile = Profile::load(&path)?;
    let client = profile.client(args.tier2)?;
    client.ensure_ready().await?;
    match args.command {
        ClientCommand::Login { .. } => unreachable!("handled above"),
        ClientCommand::Status => status(&profile, &client, args.tier2).await,
        ClientCommand::Collections => {
            for (name, modified) in client.collections().await? {
                println!("{name:<20} {modified}");
            }
            Ok(())
        }
        ClientCommand::Get { collection, id } => {
            let value = match id {
                Some(id) => client
                    .get(&collection, &id)
                    .await?
                    .map(|r| r.cleartext)
                    .with_context(|| format!("no record {id} in {collection}"))?,
                None => Value::Array(
                    client
                        .get_all(&collection)
                        .await?
                        .into_iter()
                        .map(|r| r.cleartext)
                        .collect(),
                ),
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        ClientCommand::Put { collection, file } => {
            let text = match file {
                Some(file) => std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?,
                None => {
                    let mut text = String::new();
                    std::io::stdin().read_to_string(&mut text)?;
                    text
                }
            };
            let mut value: Value = serde_json::from_str(&text).context("the record is not JSON")?;
            let object = value
                .as_object_mut()
                .context("the record must be a JSON object")?;
            if !object.contains_key("id") {
                object.insert("id".into(), Value::String(new_guid()));
            }
            let id = object["id"]
                .as_str()
                .context("\"id\" must be a string")?
                .to_owned();
            let modified = client.put(&collection, &value).await?;
            println!("stored {collection}/{id} at {modified}");
            Ok(())
        }
        ClientCommand::Delete { collection, id } => {
            client.delete(&collection, &id).await?;
            println!("deleted {collection}/{id}");
            Ok(())
        }
        ClientCommand::Keys {
            command: KeysCommand::Rotate,
        } => match &client {
            AnyClient::Tier1(tier1) => {
                let count = tier1.rotate_keys().await?;
                println!("new keys uploaded; {count} records re-encrypted");
                Ok(())
            }
            AnyClient::Tier2(_) => {
                anyhow::bail!("a Tier 2 client never changes keys; run without --tier2")
            }
        },
        ClientCommand::Export { file } => export(&client, &file).await,
        ClientCommand::Bookmarks => list(&client, "bookmarks").await,
        ClientCommand::Passwords => list(&client, "passwords").await,
        ClientCommand::Tabs => list(&client, "tabs").await,
        ClientCommand::History => list(&client, "history").await,
    }
}

async fn login(path: &Path, args: ClientArgs) -> anyhow::Result<()> {
    let ClientCommand::Login {
        token_server,
        account,
        accounts_url,
        migrate,
        password_stdin,
        identity_url,
        oauth_token,
        kb,
        kb_file,
        keys_changed_at,
    } = args.command
    else {
        unreachable!("called for login only");
    };
    let login = match (account, oauth_token) {
        (Some(account), None) => {
            let password = if password_stdin {
                read_stdin_line()?
            } else {
                anyhow::bail!("--account needs --password-stdin")
            };
            // An address signs in where Firefox does, when the server has that service.
            if identity_url.is_none() && account.contains('@') {
                let http = reqwest::Client::new();
                let accounts = match &accounts_url {
                    Some(url) => Some(onepw::accounts_at(&http, url).await?),
                    None => {
                        sync_client::accounts::AccountsClient::discover(
                            &http,
                            &base_url(&token_server),
                        )
                        .await?
                    }
                };
                if let Some(accounts) = accounts {
                    if kb.is_some() || kb_file.is_some() || keys_changed_at.is_some() {
                        anyhow::bail!(
                            "--kb, --kb-file and --keys-changed-at do not go with an account of the accounts service: its key is the account's"
                        );
                    }
                    return onepw::login(onepw::OnepwLogin {
                        path,
                        token_server: &token_server,
                        accounts,
                        email: &account,
                        password: &password,
                        migrate,
                        tier2: args.tier2,
                    })
                    .await;
                }
            }
            if accounts_url.is_some() || migrate {
                anyhow::bail!("--accounts-url and --migrate are for an address's account");
            }
            Login::Password {
                identity_url: identity_url.unwrap_or_else(|| base_url(&token_server)),
                account,
                password,
            }
        }
        (None, Some(token)) => Login::AccessToken { token },
        _ => anyhow::bail!("give either --account NAME --password-stdin or --oauth-token TOKEN"),
    };
    let (kb, generated) = match (kb, kb_file) {
        (Some(hex), None) => (hex, false),
        (None, Some(file)) => (
            std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?
                .trim()
                .to_owned(),
            false,
        ),
        (None, None) => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            (hex::encode(bytes), true)
        }
        (Some(_), Some(_)) => anyhow::bail!("give --kb or --kb-file, not both"),
    };
    let profile = Profile {
        token_server,
        login,
        kb,
        keys_changed_at: keys_changed_at.unwrap_or_else(now_ms),
    };
    profile.kb_bytes()?;
    let client = profile.client(args.tier2)?;
    client.ensure_ready().await?;
    profile.save(path)?;
    let endpoint = client.storage().endpoint().await?;
    println!("logged in: storage at {endpoint}");
    if generated {
        println!(
            "a new account key (kB) was generated; it is in {} (keep a copy: without it the data cannot be read)",
            path.display()
        );
    }
    Ok(())
}

fn base_url(token_server: &str) -> String {
    token_server
        .trim_end_matches('/')
        .trim_end_matches("/1.0/sync/1.5")
        .to_owned()
}

async fn status(profile: &Profile, client: &AnyClient, tier2: bool) -> anyhow::Result<()> {
    let kb = profile.kb_bytes()?;
    println!("token server:  {}", profile.token_server);
    println!("storage:       {}", client.storage().endpoint().await?);
    println!("client tier:   {}", if tier2 { 2 } else { 1 });
    println!(
        "key id:        {}",
        keys::key_id(&kb, profile.keys_changed_at)
    );
    if let Some(meta) = client.meta_global().await {
        println!("syncID:        {}", meta.sync_id);
        println!("storage:       version {}", meta.storage_version);
        let engines: Vec<&String> = meta.engines.keys().collect();
        println!(
            "engines:       {}",
            engines
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !meta.declined.is_empty() {
            println!("declined:      {}", meta.declined.join(", "));
        }
    }
    println!("collections:   {}", client.collections().await?.len());
    Ok(())
}

async fn list(client: &AnyClient, collection: &str) -> anyhow::Result<()> {
    let records = client.get_all(collection).await?;
    let lines = listings::render(collection, &records);
    if lines.is_empty() {
        println!("no {collection}");
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// Every collection, decrypted, into one JSON file: `{collection: [records]}`.
async fn export(client: &AnyClient, file: &Path) -> anyhow::Result<()> {
    let collections: Vec<String> = client
        .collections()
        .await?
        .into_keys()
        .filter(|name| name != "crypto" && name != "meta")
        .collect();
    let bar = ProgressBar::new(collections.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "exporting {bar:40} {pos}/{len} collections {msg}",
    )?);
    let mut out = BTreeMap::new();
    let mut total = 0;
    for name in collections {
        bar.set_message(name.clone());
        let records = client.get_all(&name).await?;
        total += records.len();
        out.insert(
            name,
            records.into_iter().map(|r| r.cleartext).collect::<Vec<_>>(),
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let handle = options
        .open(file)
        .with_context(|| format!("writing {}", file.display()))?;
    serde_json::to_writer_pretty(handle, &out)?;
    println!(
        "exported {total} records of {} collections to {}",
        out.len(),
        file.display()
    );
    Ok(())
}
