//! The command line: every command and flag, parsed and validated by clap.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Service};

/// The services behind Firefox Sync, self-hosted: one binary, SQLite by default.
#[derive(Debug, Parser)]
#[command(name = "syncstack", version, about)]
pub struct Cli {
    /// Configuration file (TOML); see `syncstack default-config`.
    #[arg(long, global = true, env = "SYNCSTACK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every command.
#[derive(Debug, Args)]
pub struct CommonFlags {
    /// Data directory (databases, generated secret and keys). Default ./syncstack-data.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on. Default 127.0.0.1:8000.
    #[arg(long, global = true)]
    pub listen: Option<SocketAddr>,
    /// The URL clients use to reach this process; storage tokens must name it. Default
    /// http://<listen>.
    #[arg(long, global = true)]
    pub public_url: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the services (all of them, on SQLite, by default).
    Serve {
        /// Address of the Prometheus metrics listener (off by default).
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Services to run, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',')]
        services: Option<Vec<Service>>,
    },
    /// Work with storage-node tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage accounts of the built-in identity provider.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Manage the storage nodes the token server assigns users to.
    Nodes {
        #[command(subcommand)]
        command: NodesCommand,
    },
    /// Delete replaced users' data from their old nodes, then their records.
    Purge {
        /// Only users replaced at least this many seconds ago.
        #[arg(long, default_value_t = 0)]
        grace_secs: u64,
        /// Most users handled in this run.
        #[arg(long, default_value_t = 10_000)]
        limit: u32,
    },
    /// A Sync client: log in, read and write your synced data.
    Client(ClientArgs),
    /// Pair a new device by a short code (Easy Setup): `offer` on a logged-in device,
    /// `accept CODE` on the new one.
    Pair(PairArgs),
    /// Remote Settings: the signing PKI (server side) and a verifying client.
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// Print the commented reference configuration.
    DefaultConfig,
}

/// `syncstack settings ...`
#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// The content-signing keys and certificates.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Poll the server and sync what changed (or one collection), verifying every
    /// signature; data that does not verify never replaces what the client holds.
    Sync {
        /// Only this collection (`bucket/collection`).
        collection: Option<String>,
        #[command(flatten)]
        source: SettingsSource,
    },
    /// Print a collection's records as JSON, from the local database.
    Get {
        /// The collection (`bucket/collection`).
        collection: String,
        /// Keep records whose field (dotted path) equals the value (JSON, else a string);
        /// repeat a field to accept any of several values.
        #[arg(long = "filter", value_name = "FIELD=VALUE")]
        filters: Vec<String>,
        /// Sort by a field (dotted path); `-field` sorts descending.
        #[arg(long)]
        order: Option<String>,
        /// Fail (exit 1) when the last sync of the collection failed or it was never synced,
        /// instead of printing what the client holds.
        #[arg(long)]
        strict: bool,
        /// Verify the local data against its stored signature before printing it.
        #[arg(long)]
        verify: bool,
        /// Do not sync first when the client holds nothing of the collection.
        #[arg(long)]
        no_sync: bool,
        #[command(flatten)]
        source: SettingsSource,
    },
    /// Show every collection the client holds, with its last syncs.
    Status {
        /// Only this collection, with more history.
        collection: Option<String>,
        /// History entries shown per collection.
        #[arg(long, default_value_t = 1)]
        history: usize,
        #[command(flatten)]
        source: SettingsSource,
    },
    /// Download a record's attachment (size and SHA-256 checked, cached locally).
    Attachment {
        /// The collection (`bucket/collection`).
        collection: String,
        /// The record id.
        id: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        source: SettingsSource,
    },
}

/// Which server the Remote Settings client reads, and what it trusts (overrides
/// `[remote_settings_client]`).
#[derive(Debug, Args)]
pub struct SettingsSource {
    /// The server's API root, e.g. https://settings.example.com/v1.
    #[arg(long)]
    pub server: Option<String>,
    /// SHA-256 of the pinned root certificate (`3C:01:...`).
    #[arg(long)]
    pub root_hash: Option<String>,
}

/// `syncstack settings pki ...`
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a root, an intermediate and a signer certificate with their keys, and print
    /// the root's SHA-256 that clients pin. `serve` signs with them when they are in
    /// <data_dir>/signer/ (the default --out). With --intermediate-cert and
    /// --intermediate-key, issue the signer under that existing CA instead (your
    /// organization's, or the one Firefox trusts for local servers).
    Init {
        /// The signer name (DNS name) in the certificate. Default: signer.signer_name.
        #[arg(long)]
        signer_name: Option<String>,
        /// Days the signer certificate is valid (the CAs live at least ten years).
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Directory to write to. Default <data_dir>/signer.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace existing files (clients pinning the old root will refuse the new one).
        #[arg(long)]
        force: bool,
        /// PEM file of an existing CA to issue the signer under, optionally followed by
        /// the certificates above it up to the root (put the root in: clients that pin it
        /// need it in the chain). Copied into --out, so `renew` keeps using it.
        #[arg(long, value_name = "FILE", requires = "intermediate_key")]
        intermediate_cert: Option<PathBuf>,
        /// That CA's private key (P-384; PKCS#8 or SEC1 PEM). Copied into --out with mode
        /// 0600, for `renew`.
        #[arg(long, value_name = "FILE", requires = "intermediate_cert")]
        intermediate_key: Option<PathBuf>,
    },
    /// Issue a new signer certificate and key from the intermediate of `init`, keeping the
    /// root clients pin. A running server uses it at its next periodic re-signature.
    Renew {
        /// The signer name. Default: signer.signer_name.
        #[arg(long)]
        signer_name: Option<String>,
        /// Days the new signer certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Directory holding the PKI. Default <data_dir>/signer.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `syncstack pair ...`
#[derive(Debug, Args)]
pub struct PairArgs {
    /// The client login (read by `offer`, written by `accept`). Default
    /// ~/.config/syncstack/client.json.
    #[arg(long, global = true)]
    pub profile: Option<PathBuf>,
    /// The syncstack server whose pairing relay to use. `offer` defaults to the login's
    /// server; `accept` needs it.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// Seconds to wait for the other device.
    #[arg(long, global = true, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Milliseconds between polls of the relay.
    #[arg(long, global = true, default_value_t = 1000, hide = true)]
    pub poll_ms: u64,
    #[command(subcommand)]
    pub command: PairCommand,
}

/// The pairing commands.
#[derive(Debug, Subcommand)]
pub enum PairCommand {
    /// On a logged-in device: show a code, wait for the new device, send it the login.
    Offer,
    /// On the new device: receive the login offered under CODE and save it.
    Accept {
        /// The code the other device shows (12 characters, dashes optional).
        code: String,
    },
}

/// `syncstack client ...`
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Where the login is kept (mode 0600). Default ~/.config/syncstack/client.json.
    #[arg(long, global = true)]
    pub profile: Option<PathBuf>,
    /// Run as a Tier 2 client: never write the crypto collection, never set up the server.
    #[arg(long, global = true)]
    pub tier2: bool,
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// The client's commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Log in through a token server and save the login.
    Login {
        /// The token server, e.g. http://127.0.0.1:8000 (or its /1.0/sync/1.5 URL).
        #[arg(long)]
        token_server: String,
        /// The account (with --password-stdin). An email address signs in to the accounts
        /// service Firefox uses (found at the token server's origin, or --accounts-url), so
        /// the CLI and Firefox share the account's key; other names are accounts of
        /// syncstack's identity provider.
        #[arg(long)]
        account: Option<String>,
        /// The accounts service, e.g. https://sync.example (its origin) or its auth API
        /// (…/auth/v1); default: the one the token server's origin announces.
        #[arg(long)]
        accounts_url: Option<String>,
        /// Move a saved identity-provider login of the same address to the accounts
        /// service, keeping its data: the key its data is stored under becomes the
        /// account's key (Firefox then signs in again).
        #[arg(long)]
        migrate: bool,
        /// Read the account's password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The identity provider's URL (default: the token server's); given, it is used
        /// even for an address.
        #[arg(long)]
        identity_url: Option<String>,
        /// An OAuth access token with the Sync scope (instead of an account).
        #[arg(long)]
        oauth_token: Option<String>,
        /// The account's key kB, 64 hex characters (default: generate one for a new account).
        #[arg(long)]
        kb: Option<String>,
        /// A file holding kB in hex.
        #[arg(long)]
        kb_file: Option<PathBuf>,
        /// When kB was created, in ms (X-KeyID); default now.
        #[arg(long)]
        keys_changed_at: Option<u64>,
    },
    /// Show the login, the node and the server's setup.
    Status,
    /// List collections with their last-modified times.
    Collections,
    /// Print decrypted records: one, or the whole collection.
    Get {
        /// The collection.
        collection: String,
        /// A record id.
        id: Option<String>,
    },
    /// Encrypt and store a JSON object (from a file or standard input); an id is generated
    /// when it has none.
    Put {
        /// The collection.
        collection: String,
        /// The file holding the JSON object.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Delete a record.
    Delete {
        /// The collection.
        collection: String,
        /// The record id.
        id: String,
    },
    /// Manage the collection keys (Tier 1).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Export every collection, decrypted, to a JSON file (mode 0600).
    Export {
        /// The file to write.
        file: PathBuf,
    },
    /// List bookmarks.
    Bookmarks,
    /// List saved logins (passwords masked).
    Passwords,
    /// List open tabs of every device.
    Tabs,
    /// List history.
    History,
}

/// `syncstack client keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// New collection keys; every record re-encrypted and uploaded again.
    Rotate,
}

/// `syncstack token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token that a storage node with the same master secret accepts.
    Mint {
        /// The user's numeric id.
        #[arg(long)]
        uid: u64,
        /// The node URL the token is for. Default: this node's public URL.
        #[arg(long)]
        node: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        duration: u64,
    },
}

/// `syncstack accounts ...`
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account. Without --password-stdin it has no password and gets tokens only
    /// through `accounts token`. When the name is an email address and a password is
    /// given, Firefox can sign in to it too (the accounts service gets an account with the
    /// same uid; see docs/adr/0012-accounts-service.md).
    Add {
        /// Account name (an email address for an account Firefox can use).
        name: String,
        /// Read a password from the first line of standard input (for logging in over HTTP).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Delete an account.
    Remove {
        /// Account name.
        name: String,
    },
    /// Set an account's password from the first line of standard input. Like a password
    /// change at Mozilla Accounts, this moves the account's generation: access tokens issued
    /// before are refused by the token server from then on.
    Passwd {
        /// Account name.
        name: String,
    },
    /// List the devices and sessions signed in to an account's Firefox side.
    Devices {
        /// Account email address.
        name: String,
    },
    /// Print a signed access token for an account.
    Token {
        /// Account name.
        name: String,
        /// Scope of the token.
        #[arg(long, default_value = "https://identity.mozilla.com/apps/oldsync")]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        duration: u64,
    },
}

/// `syncstack nodes ...`
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Add a storage node.
    Add {
        /// The node's public URL (what its tokens name).
        url: String,
        /// Most users it should hold.
        #[arg(long)]
        capacity: i64,
    },
    /// List nodes with their load.
    List,
    /// Change a node's figures or flags.
    Set {
        /// The node's URL.
        url: String,
        /// New capacity.
        #[arg(long)]
        capacity: Option<i64>,
        /// New available slots.
        #[arg(long)]
        available: Option<i64>,
        /// New current load.
        #[arg(long)]
        current_load: Option<i64>,
        /// Back off: no new users until capacity is released.
        #[arg(long)]
        backoff: Option<bool>,
    },
    /// Mark a node down: it gets no new users.
    Down {
        /// The node's URL.
        url: String,
    },
    /// Mark a node up again.
    Up {
        /// The node's URL.
        url: String,
    },
    /// Remove a node; its users get a new node on their next token request.
    Remove {
        /// The node's URL.
        url: String,
    },
}
