//! The storage-node scenario: a population of users with a realistic mix of requests.
//!
//! Setup gives every user a `history` collection of `--full-records` records (~500-byte
//! payloads, uploaded 100 per POST), then workers run for `--duration-secs`, each request
//! for a random user, chosen with these weights:
//!
//! | operation | weight | what a client does |
//! |---|---:|---|
//! | `info_collections` | 30 | checks what changed |
//! | `get_newer` | 25 | incremental download of `forms` with `newer=` and `full` |
//! | `get_full_1000` | 5 | downloads the whole `history` collection |
//! | `post_100` | 20 | uploads 100 records of ~500 bytes to `forms` |
//! | `batch_upload` | 10 | uploads 150 records to `bookmarks` as batch=true, append, commit |
//! | `delete_ids` | 10 | deletes 5 records of `forms` by id |
//!
//! A 503 or 429 with `Retry-After` is answered as real clients do: the request is sent again
//! after that pause (at most 5 times). The pause counts in the operation's latency, and the
//! retries are reported per operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use rand::seq::IndexedRandom;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sync_proto::hawk::{self, RequestTarget};
use sync_proto::token::{self, MasterSecret, Token, TokenPayload};
use tokio::sync::Mutex;
use url::Url;

use crate::report::{Recorder, markdown};

/// Options of the storage scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Base URL requests are sent to, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// Node URL the tokens name (default: --url). Differs from --url behind a proxy.
    #[arg(long)]
    node: Option<String>,
    /// Master secret shared with the node.
    #[arg(long, env = "SYNCSTACK_BENCH_SECRET", hide_env_values = true)]
    secret: String,
    /// Number of users.
    #[arg(long, default_value_t = 20)]
    users: u64,
    /// First uid; users are uid-base .. uid-base + users.
    #[arg(long, default_value_t = 1_000_000)]
    uid_base: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Length of the measured run, in seconds.
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// Records in each user's `history` collection (the full download).
    #[arg(long, default_value_t = 1000)]
    full_records: usize,
    /// Print JSON instead of a Markdown table.
    #[arg(long)]
    json: bool,
}

/// A user's credentials and incremental-sync position.
struct User {
    uid: u64,
    token: Token,
    last_sync: Mutex<String>,
}

struct Bench {
    http: reqwest::Client,
    base: Url,
    users: Vec<User>,
    payload: String,
}

/// Most times one request is sent again after a `Retry-After`.
const MAX_RETRIES: u32 = 5;
/// Longest pause honoured from a `Retry-After`.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// The pause a 503 or 429 asks for (`Retry-After` in seconds), capped; `None` without one.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_PAUSE))
}

const WEIGHTS: [(&str, u32); 6] = [
    ("info_collections", 30),
    ("get_newer", 25),
    ("get_full_1000", 5),
    ("post_100", 20),
    ("batch_upload", 10),
    ("delete_ids", 10),
];

/// Runs setup, then the measured mix, and prints the results.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let base = Url::parse(options.url.trim_end_matches('/')).context("--url")?;
    let node = options
        .node
        .clone()
        .unwrap_or_else(|| options.url.trim_end_matches('/').to_owned());
    let secret = MasterSecret::new(options.secret.as_bytes());
    let users = (0..options.users)
        .map(|i| {
            let uid = options.uid_base + i;
            User {
                uid,
                token: mint(&secret, uid, &node),
                last_sync: Mutex::new("0".into()),
            }
        })
        .collect();
    let bench = Arc::new(Bench {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(options.concurrency)
            .timeout(Duration::from_secs(60))
            .build()?,
        base,
        users,
        payload: "x".repeat(500),
    });
    setup(&bench, &options).await?;

    eprintln!(
        "running the mix for {} s with {} requests in flight over {} users",
        options.duration_secs, options.concurrency, options.users
    );
    let deadline = Instant::now() + Duration::from_secs(options.duration_secs);
    let started = Instant::now();
    let progress = Arc::new(AtomicU64::new(0));
    let bar = indicatif::ProgressBar::new(options.duration_secs);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} s {msg}",
    )?);
    let ticker = {
        let (bar, progress) = (bar.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
                bar.set_message(format!("{} requests", progress.load(Ordering::Relaxed)));
            }
        })
    };
    let mut workers = Vec::new();
    for worker in 0..options.concurrency {
        let bench = bench.clone();
        let progress = progress.clone();
        workers.push(tokio::spawn(async move {
            let mut recorder = Recorder::default();
            let mut counter = 0u64;
            while Instant::now() < deadline {
                let op = pick_operation();
                let user = {
                    let mut rng = rand::rng();
                    &bench.users[rng.random_range(0..bench.users.len())]
                };
                counter += 1;
                let began = Instant::now();
                let retries = AtomicU64::new(0);
                let ok = bench
                    .operation(op, user, worker as u64 * 1_000_000 + counter, &retries)
                    .await;
                recorder.record(op, began.elapsed(), ok);
                recorder.record_retries(op, retries.into_inner());
                progress.fetch_add(1, Ordering::Relaxed);
            }
            recorder
        }));
    }
    let mut total = Recorder::default();
    for worker in workers {
        total.merge(worker.await?);
    }
    let elapsed = started.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    let rows = total.summary(elapsed);
    if options.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{}", markdown(&rows));
    }
    Ok(())
}

fn pick_operation() -> &'static str {
    let mut rng = rand::rng();
    WEIGHTS
        .choose_weighted(&mut rng, |(_, weight)| *weight)
        .map(|(op, _)| *op)
        .unwrap_or("info_collections")
}

/// A token with the claims Mozilla's token server puts in, so any node accepts it.
fn mint(secret: &MasterSecret, uid: u64, node: &str) -> Token {
    let mut payload = TokenPayload::new(uid, node, 6 * 3600);
    payload.fxa_uid = Some(format!("{uid:032x}"));
    payload.fxa_kid = Some(format!("{:013}-{}", 1, "AAAAAAAAAAAAAAAAAAAAAA"));
    payload.hashed_fxa_uid = Some(format!("{uid:032x}"));
    payload.hashed_device_id = Some(format!("{uid:032x}"));
    token::mint(secret, &payload)
}

async fn setup(bench: &Bench, options: &Options) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(bench.users.len() as u64);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "setup {bar:40} {pos}/{len} users ({msg})",
    )?);
    bar.set_message(format!("{} records each", options.full_records));
    // Users are set up side by side, each one's requests in order: Mozilla's node answers
    // back-to-back writes of one user with 503 and `Retry-After: 10`, which made a setup of
    // one user after the other take a quarter of an hour.
    futures::stream::iter(&bench.users)
        .map(|user| async {
            setup_user(bench, options, user).await?;
            bar.inc(1);
            anyhow::Ok(())
        })
        .buffer_unordered(options.concurrency.max(1))
        .try_for_each(|()| async { Ok(()) })
        .await?;
    bar.finish_and_clear();
    Ok(())
}

/// Empties one user's storage and writes its `history` collection.
async fn setup_user(bench: &Bench, options: &Options, user: &User) -> anyhow::Result<()> {
    let retries = AtomicU64::new(0);
    let (status, _, _) = bench.send(user, Method::DELETE, "", None, &retries).await?;
    if !status.is_success() {
        bail!(
            "DELETE of user {}'s storage answered {status}: are the secret and node URL right?",
            user.uid
        );
    }
    for post in 0..options.full_records.div_ceil(100) {
        let records: Vec<Value> = (post * 100..((post + 1) * 100).min(options.full_records))
            .map(|i| json!({"id": format!("h{i:05}"), "payload": bench.payload, "sortindex": i}))
            .collect();
        let (status, _, _) = bench
            .send(
                user,
                Method::POST,
                "/storage/history",
                Some(json!(records)),
                &retries,
            )
            .await?;
        if status != StatusCode::OK {
            bail!("setup POST for user {} answered {status}", user.uid);
        }
    }
    Ok(())
}

impl Bench {
    /// Signs and sends one request, again after the pause the server asks for (503 or 429
    /// with `Retry-After`, as Mozilla's node answers back-to-back writes of one user), at
    /// most [`MAX_RETRIES`] times, counting each retry in `retries`; returns status,
    /// `X-Last-Modified` and body.
    async fn send(
        &self,
        user: &User,
        method: Method,
        rest: &str,
        body: Option<Value>,
        retries: &AtomicU64,
    ) -> anyhow::Result<(StatusCode, Option<String>, Vec<u8>)> {
        let mut attempt = 0;
        loop {
            let response = self
                .send_once(user, method.clone(), rest, body.as_ref())
                .await?;
            let pause = match response.status() {
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                    if attempt < MAX_RETRIES =>
                {
                    retry_after(&response)
                }
                _ => None,
            };
            let Some(pause) = pause else {
                let status = response.status();
                let last_modified = response
                    .headers()
                    .get("x-last-modified")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response.bytes().await?;
                return Ok((status, last_modified, body.to_vec()));
            };
            attempt += 1;
            retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
        }
    }

    /// Signs (afresh: new nonce and time) and sends one request.
    async fn send_once(
        &self,
        user: &User,
        method: Method,
        rest: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = Url::parse(&format!("{}1.5/{}{rest}", with_slash(&self.base), user.uid))?;
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let target = RequestTarget {
            method: method.as_str(),
            path_and_query: &path,
            host: url.host_str().unwrap_or("localhost"),
            port: url.port_or_known_default().unwrap_or(80),
        };
        let authorization =
            hawk::sign_request(&user.token.id, user.token.key.as_bytes(), &target, None);
        let mut request = self
            .http
            .request(method, url)
            .header("authorization", authorization);
        if let Some(body) = body {
            request = request.json(body);
        }
        Ok(request.send().await?)
    }

    /// Runs one operation; whether every request got the expected status.
    async fn operation(&self, op: &str, user: &User, n: u64, retries: &AtomicU64) -> bool {
        let result = match op {
            "info_collections" => {
                self.expect(retries, user, Method::GET, "/info/collections", None, 200)
                    .await
            }
            "get_newer" => {
                let since = user.last_sync.lock().await.clone();
                let path = format!("/storage/forms?full=1&newer={since}");
                match self.send(user, Method::GET, &path, None, retries).await {
                    Ok((status, last_modified, _)) if status == StatusCode::OK => {
                        if let Some(ts) = last_modified {
                            *user.last_sync.lock().await = ts;
                        }
                        Ok(true)
                    }
                    Ok(_) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            "get_full_1000" => {
                self.expect(
                    retries,
                    user,
                    Method::GET,
                    "/storage/history?full=1",
                    None,
                    200,
                )
                .await
            }
            "post_100" => {
                self.expect(
                    retries,
                    user,
                    Method::POST,
                    "/storage/forms",
                    Some(self.records(n, 100)),
                    200,
                )
                .await
            }
            "batch_upload" => self.batch_upload(user, n, retries).await,
            "delete_ids" => {
                let ids: Vec<String> = {
                    let mut rng = rand::rng();
                    (0..5)
                        .map(|_| format!("f{}", rng.random_range(0..2000)))
                        .collect()
                };
                let path = format!("/storage/forms?ids={}", ids.join(","));
                self.expect(retries, user, Method::DELETE, &path, None, 200)
                    .await
            }
            _ => Ok(false),
        };
        result.unwrap_or(false)
    }

    async fn expect(
        &self,
        retries: &AtomicU64,
        user: &User,
        method: Method,
        rest: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<bool> {
        let (status, _, _) = self.send(user, method, rest, body, retries).await?;
        Ok(status.as_u16() == want)
    }

    fn records(&self, n: u64, count: usize) -> Value {
        let mut rng = rand::rng();
        let records: Vec<Value> = (0..count)
            .map(|_| json!({"id": format!("f{}", rng.random_range(0..2000)), "payload": format!("{n}{}", self.payload)}))
            .collect();
        // Ids drawn at random may repeat; a POST must not carry the same id twice.
        let mut seen = std::collections::HashSet::new();
        json!(
            records
                .into_iter()
                .filter(|r| seen.insert(r["id"].as_str().unwrap_or("").to_owned()))
                .collect::<Vec<_>>()
        )
    }

    async fn batch_upload(&self, user: &User, n: u64, retries: &AtomicU64) -> anyhow::Result<bool> {
        let chunk = |part: usize| -> Value {
            json!(
                (0..50)
                    .map(|i| json!({"id": format!("b{n}-{part}-{i}"), "payload": self.payload}))
                    .collect::<Vec<_>>()
            )
        };
        let url = |query: String| format!("/storage/bookmarks?{query}");
        let (status, _, body) = self
            .send(
                user,
                Method::POST,
                &url("batch=true".into()),
                Some(chunk(0)),
                retries,
            )
            .await?;
        if status != StatusCode::ACCEPTED {
            return Ok(false);
        }
        let opened: Value = serde_json::from_slice(&body)?;
        let Some(batch) = opened["batch"].as_str() else {
            return Ok(false);
        };
        // Batch ids are opaque: encode them for the query string.
        let batch: String = url::form_urlencoded::byte_serialize(batch.as_bytes()).collect();
        let (status, _, _) = self
            .send(
                user,
                Method::POST,
                &url(format!("batch={batch}")),
                Some(chunk(1)),
                retries,
            )
            .await?;
        if status != StatusCode::ACCEPTED {
            return Ok(false);
        }
        let (status, _, _) = self
            .send(
                user,
                Method::POST,
                &url(format!("batch={batch}&commit=true")),
                Some(chunk(2)),
                retries,
            )
            .await?;
        Ok(status == StatusCode::OK)
    }
}

fn with_slash(url: &Url) -> String {
    let text = url.as_str();
    if text.ends_with('/') {
        text.to_owned()
    } else {
        format!("{text}/")
    }
}
