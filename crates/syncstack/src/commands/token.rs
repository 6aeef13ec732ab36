//! `syncstack token mint`: credentials for a storage node without a token server.

use serde::Serialize;
use sync_proto::token::{self, TokenPayload};

use crate::config::Settings;
use crate::secret::master_secret;

/// What `token mint` prints: the fields of a token server's answer.
#[derive(Serialize)]
struct Minted {
    id: String,
    key: String,
    uid: u64,
    api_endpoint: String,
    duration: u64,
}

/// Prints a token for `uid` on `node` (default: this node's public URL) as JSON.
pub fn mint(
    settings: &Settings,
    uid: u64,
    node: Option<String>,
    duration: u64,
) -> anyhow::Result<()> {
    let secret = master_secret(settings, false)?;
    let node = match node {
        Some(node) => node,
        None => settings
            .public_url()?
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
    };
    if token::normalize_node_url(&node).is_none() {
        anyhow::bail!("--node {node:?} is not an http(s) URL");
    }
    let minted = token::mint(&secret, &TokenPayload::new(uid, &node, duration));
    let out = Minted {
        id: minted.id,
        key: minted.key,
        uid,
        api_endpoint: format!("{}/1.5/{uid}", node.trim_end_matches('/')),
        duration,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
