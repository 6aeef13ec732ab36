//! `syncstack nodes`: the storage nodes of the token server.

use tokenserver_store::{Node, NodeChange};

use crate::backends::open_token_store;
use crate::cli::NodesCommand;
use crate::config::Settings;

fn print_nodes(nodes: &[Node]) {
    println!(
        "{:<40} {:>9} {:>9} {:>9}  flags",
        "node", "capacity", "load", "available"
    );
    for node in nodes {
        let mut flags = Vec::new();
        if node.downed {
            flags.push("down");
        }
        if node.backoff {
            flags.push("backoff");
        }
        println!(
            "{:<40} {:>9} {:>9} {:>9}  {}",
            node.url,
            node.capacity,
            node.current_load,
            node.available,
            flags.join(",")
        );
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs one `nodes` command.
pub async fn run(settings: &Settings, command: NodesCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let store = open_token_store(settings).await?;
    let flag = |downed: bool| NodeChange {
        downed: Some(downed),
        ..NodeChange::default()
    };
    match command {
        NodesCommand::Add { url, capacity } => {
            if sync_proto::token::normalize_node_url(&url).is_none() {
                anyhow::bail!("{url:?} is not an http(s) URL");
            }
            if capacity <= 0 {
                anyhow::bail!("--capacity must be positive");
            }
            print_nodes(&[store.add_node(&url, capacity).await?]);
        }
        NodesCommand::List => print_nodes(&store.list_nodes().await?),
        NodesCommand::Set {
            url,
            capacity,
            available,
            current_load,
            backoff,
        } => {
            let change = NodeChange {
                capacity,
                available,
                current_load,
                backoff,
                downed: None,
            };
            print_nodes(&[store.update_node(&url, change).await?]);
        }
        NodesCommand::Down { url } => print_nodes(&[store.update_node(&url, flag(true)).await?]),
        NodesCommand::Up { url } => print_nodes(&[store.update_node(&url, flag(false)).await?]),
        NodesCommand::Remove { url } => {
            let moved = store.remove_node(&url, now_ms()).await?;
            println!(
                "removed {url}; {moved} users will get a new node on their next token request"
            );
            println!(
                "their old data stays on the node until `syncstack purge` (skipped while it is gone)"
            );
        }
    }
    Ok(())
}
