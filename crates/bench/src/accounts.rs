//! The accounts scenario: what Firefox's sign-in costs the server.
//!
//! Needs an existing account (`syncstack accounts add EMAIL --password-stdin`). Two
//! operations are measured one after the other, each for `--duration-secs` with
//! `--concurrency` requests in flight:
//!
//! | operation | what the server does |
//! |---|---|
//! | `login` | `POST /auth/v1/account/login`: one argon2id check of `authPW`, a session written |
//! | `oauth_token` | `POST /auth/v1/oauth/token` (`fxa-credentials`, Sync's scope): a session looked up, an RS256 access token signed |
//!
//! The password is stretched once on the client (PBKDF2 is the client's cost, not the
//! server's). A request counts as an error unless it answers 200.

use std::sync::Arc;
use std::time::{Duration, Instant};

use accounts::onepw::{ClientKeys, TokenKeys, TokenKind};
use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::report::{Recorder, Row, markdown};

/// Options of the accounts scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Base URL of syncstack, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// The account's email address.
    #[arg(long)]
    email: String,
    /// Its password.
    #[arg(long)]
    password: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Length of each measured phase, in seconds.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Print JSON instead of a Markdown table.
    #[arg(long)]
    json: bool,
}

/// One request: where, what, with which `Authorization`.
#[derive(Clone)]
struct Call {
    url: String,
    body: Value,
    authorization: Option<String>,
}

async fn send(http: &reqwest::Client, call: &Call) -> Result<Value, String> {
    let mut request = http.post(&call.url).json(&call.body);
    if let Some(authorization) = &call.authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("{status}: {body}"));
    }
    Ok(body)
}

/// Sends `call` from `concurrency` workers for `duration`.
async fn phase(
    op: &'static str,
    http: &reqwest::Client,
    call: Call,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    eprintln!(
        "{op}: {} s with {concurrency} requests in flight",
        duration.as_secs()
    );
    let call = Arc::new(call);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, call) = (http.clone(), call.clone());
        workers.push(tokio::spawn(async move {
            let mut recorder = Recorder::default();
            let mut first_error = None;
            while Instant::now() < deadline {
                let began = Instant::now();
                let outcome = send(&http, &call).await;
                recorder.record(op, began.elapsed(), outcome.is_ok());
                if let Err(error) = outcome {
                    first_error.get_or_insert(error);
                }
            }
            (recorder, first_error)
        }));
    }
    let mut total = Recorder::default();
    for worker in workers {
        let (recorder, error) = worker.await?;
        total.merge(recorder);
        if let Some(error) = error {
            eprintln!("{op}: an error: {error}");
        }
    }
    Ok(total.operation_rows(started.elapsed()))
}

/// Runs the scenario.
pub async fn run(options: Options) -> anyhow::Result<()> {
    if options.concurrency == 0 || options.duration_secs == 0 {
        bail!("--concurrency and --duration-secs must be positive");
    }
    let base = options.url.trim_end_matches('/');
    let keys = ClientKeys::derive(&options.email, &options.password);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let login = Call {
        url: format!("{base}/auth/v1/account/login"),
        body: json!({"email": options.email, "authPW": hex::encode(keys.auth_pw)}),
        authorization: None,
    };
    let signed_in = send(&http, &login)
        .await
        .map_err(anyhow::Error::msg)
        .context("signing in (does the account exist, with this password?)")?;
    let session = signed_in["sessionToken"]
        .as_str()
        .context("no sessionToken")?;
    let raw: [u8; 32] = hex::decode(session)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("a session token is 32 bytes"))?;
    let id = hex::encode(TokenKeys::derive(&raw, TokenKind::Session).id);
    let token = Call {
        url: format!("{base}/auth/v1/oauth/token"),
        body: json!({"grant_type": "fxa-credentials", "client_id": "5882386c6d801776",
                     "scope": "https://identity.mozilla.com/apps/oldsync", "ttl": 3600}),
        authorization: Some(format!("Bearer fxs_{id}")),
    };
    let duration = Duration::from_secs(options.duration_secs);
    let mut rows = phase("login", &http, login, options.concurrency, duration).await?;
    rows.extend(phase("oauth_token", &http, token, options.concurrency, duration).await?);
    if options.json {
        println!("{}", serde_json::to_string_pretty(&json!({"rows": rows}))?);
    } else {
        println!(
            "{} s per operation, {} requests in flight\n",
            options.duration_secs, options.concurrency
        );
        println!("{}", markdown(&rows));
    }
    Ok(())
}
