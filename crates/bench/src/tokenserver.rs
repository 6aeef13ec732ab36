//! The token-server scenario: `GET /1.0/sync/1.5` with RS256 access tokens of a trusted
//! issuer, as Firefox asks for storage credentials.
//!
//! The bench is its own issuer. `--write-issuer DIR` generates an RSA-2048 key and writes
//! `DIR/issuer.pem` (PKCS#8) and `DIR/jwks.json`, for the token server's configuration:
//!
//! ```toml
//! [[tokenserver.issuers]]
//! issuer = "syncstack-bench"
//! jwks_file = "DIR/jwks.json"
//! ```
//!
//! A load run then measures two operations, one after the other, each for `--duration-secs`
//! with `--concurrency` requests in flight:
//!
//! | operation | what the server does |
//! |---|---|
//! | `new_user` | every request carries a `sub` never seen before: verify, allocate a user on a node (a write), mint |
//! | `returning_user` | requests for `--users` accounts that already have a record (created in an unmeasured warm-up): verify, look up, mint |
//!
//! Every JWT is signed before its phase starts, so the client's RSA signing is not part of
//! the figures. A request counts as an error unless it answers 200 with an `api_endpoint`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::Rng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::report::{Recorder, Row, markdown};

/// The scope a token must carry to get Sync credentials.
const SYNC_SCOPE: &str = "https://identity.mozilla.com/apps/oldsync";
/// The `iss` of the bench's tokens.
const ISSUER: &str = "syncstack-bench";
/// Lifetime of the signed tokens: long enough for pre-signed tokens to outlive any run.
const TOKEN_LIFETIME_SECS: u64 = 6 * 3600;
/// Fewest new-user tokens signed per second of the phase, whatever the warm-up rate.
const MIN_NEW_TOKENS_PER_SEC: f64 = 200.0;
/// How many times the warm-up's rate of new users the new-user phase gets tokens for.
const NEW_TOKENS_MARGIN: f64 = 3.0;

/// Options of the token-server scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Generate an issuer key in DIR (issuer.pem, jwks.json), print the issuer name and
    /// exit without sending any request.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["url", "issuer_key", "issuer"])]
    write_issuer: Option<PathBuf>,
    /// Base URL of the token server, e.g. http://127.0.0.1:8000.
    #[arg(long, required_unless_present = "write_issuer")]
    url: Option<String>,
    /// The issuer's private key, as written by --write-issuer (DIR/issuer.pem).
    #[arg(long, value_name = "FILE", required_unless_present = "write_issuer")]
    issuer_key: Option<PathBuf>,
    /// The issuer name the token server trusts (printed by --write-issuer).
    #[arg(long, value_name = "NAME", required_unless_present = "write_issuer")]
    issuer: Option<String>,
    /// `aud` claim of the tokens (needed only if the server checks one for this issuer).
    #[arg(long)]
    audience: Option<String>,
    /// Returning users: accounts created before the measured phase, then asked for again.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Length of each measured phase, in seconds.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Tokens to pre-sign for the new-user phase (default: 3 times the rate the warm-up
    /// created users at, over the phase, and at least 200 per second).
    #[arg(long)]
    new_user_tokens: Option<usize>,
    /// Print JSON instead of a Markdown table.
    #[arg(long)]
    json: bool,
}

/// Runs the scenario (or writes an issuer key).
pub async fn run(options: Options) -> anyhow::Result<()> {
    if let Some(dir) = &options.write_issuer {
        write_issuer(dir)?;
        println!("{ISSUER}");
        return Ok(());
    }
    let (Some(url), Some(key_path), Some(issuer)) =
        (&options.url, &options.issuer_key, &options.issuer)
    else {
        bail!("--url, --issuer-key and --issuer are required unless --write-issuer is given");
    };
    if options.users == 0 || options.concurrency == 0 || options.duration_secs == 0 {
        bail!("--users, --concurrency and --duration-secs must be positive");
    }
    let signer = Arc::new(Signer::load(key_path, issuer, options.audience.clone())?);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let endpoint = format!("{}/1.0/sync/1.5", url.trim_end_matches('/'));
    let duration = Duration::from_secs(options.duration_secs);
    let mut notes = Vec::new();

    // Returning users: sign, then create their records (unmeasured). The warm-up's rate is
    // also the estimate of how many new users the server creates per second.
    let returning_run: u64 = rand::rng().random();
    let began = Instant::now();
    let returning = Arc::new(signer.sign_many(returning_run, options.users));
    eprintln!(
        "signed {} returning-user tokens in {:.1} s",
        returning.len(),
        began.elapsed().as_secs_f64()
    );
    let warm_up_rate = warm_up(&http, &endpoint, &returning, options.concurrency).await?;
    eprintln!(
        "warm-up: {} users created at {warm_up_rate:.0}/s",
        returning.len()
    );

    // New users: every token names a subject the server has never seen.
    let wanted = options.new_user_tokens.unwrap_or_else(|| {
        let per_sec = (warm_up_rate * NEW_TOKENS_MARGIN).max(MIN_NEW_TOKENS_PER_SEC);
        (per_sec * options.duration_secs as f64).ceil() as usize
    });
    let new_run: u64 = loop {
        let run: u64 = rand::rng().random();
        if run != returning_run {
            break run;
        }
    };
    let began = Instant::now();
    let fresh = Arc::new(FreshTokens {
        tokens: signer.sign_many(new_run, wanted),
        next: AtomicUsize::new(0),
        run: new_run,
        signer: signer.clone(),
        signed_late: AtomicU64::new(0),
    });
    eprintln!(
        "signed {wanted} new-user tokens in {:.1} s",
        began.elapsed().as_secs_f64()
    );

    let mut rows = Vec::new();
    let new_phase = {
        let fresh = fresh.clone();
        Phase {
            op: "new_user",
            http: http.clone(),
            endpoint: endpoint.clone(),
            concurrency: options.concurrency,
            duration,
            next: Arc::new(move || fresh.next()),
        }
    };
    rows.extend(new_phase.run().await?);
    let used = fresh.next.load(Ordering::Relaxed);
    let late = fresh.signed_late.load(Ordering::Relaxed);
    notes.push(format!(
        "new_user: {wanted} tokens pre-signed, {} used{}",
        used.min(wanted),
        if late > 0 {
            format!(
                "; the pool ran out and {late} more were signed during the phase, \
                 so the client may have limited it: rerun with --new-user-tokens {}",
                2 * used
            )
        } else {
            String::new()
        }
    ));

    let returning_phase = {
        let returning = returning.clone();
        Phase {
            op: "returning_user",
            http: http.clone(),
            endpoint: endpoint.clone(),
            concurrency: options.concurrency,
            duration,
            next: Arc::new(move || {
                let i = rand::rng().random_range(0..returning.len());
                returning[i].clone()
            }),
        }
    };
    rows.extend(returning_phase.run().await?);
    notes.push(format!(
        "returning_user: {} users, created in an unmeasured warm-up; {} tokens pre-signed (one per user, reused as a client reuses its access token)",
        returning.len(),
        returning.len()
    ));

    if options.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"notes": notes, "rows": rows}))?
        );
    } else {
        println!(
            "{} s per operation, {} requests in flight\n",
            options.duration_secs, options.concurrency
        );
        for note in &notes {
            println!("- {note}");
        }
        println!();
        println!("{}", markdown(&rows));
    }
    if late > 0 {
        eprintln!("warning: {}", notes[0]);
    }
    Ok(())
}

/// Generates an RSA-2048 key and writes `dir/issuer.pem` and `dir/jwks.json`.
fn write_issuer(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)?;
    let pem = private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)?;
    let public = private.to_public_key();
    let jwks = json!({"keys": [{
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": key_id(&private),
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    }]});
    let pem_path = dir.join("issuer.pem");
    std::fs::write(&pem_path, pem.as_bytes())
        .with_context(|| format!("writing {}", pem_path.display()))?;
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, serde_json::to_string_pretty(&jwks)?)
        .with_context(|| format!("writing {}", jwks_path.display()))?;
    Ok(())
}

/// The key's `kid`: the first 8 bytes of its modulus in hex, so that the key file alone
/// gives it back.
fn key_id(key: &rsa::RsaPrivateKey) -> String {
    let modulus = key.n().to_bytes_be();
    let hex: String = modulus.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("bench-{hex}")
}

/// What one token request sends.
#[derive(Clone)]
struct Credential {
    /// `Bearer <jwt>`.
    authorization: String,
    /// `<keys_changed_at>-<client state>`.
    key_id: String,
}

/// Signs access tokens as the bench's issuer.
struct Signer {
    key: EncodingKey,
    kid: String,
    issuer: String,
    audience: Option<String>,
}

impl Signer {
    fn load(path: &Path, issuer: &str, audience: Option<String>) -> anyhow::Result<Signer> {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
            .with_context(|| format!("{} is not a PKCS#8 RSA key", path.display()))?;
        Ok(Signer {
            key: EncodingKey::from_rsa_pem(pem.as_bytes())?,
            kid: key_id(&private),
            issuer: issuer.to_owned(),
            audience,
        })
    }

    /// The credential of account `i` of run `run`: its subject is 32 hex digits, like a
    /// Mozilla Accounts uid, unique to the run.
    fn sign(&self, run: u64, i: u64) -> Credential {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut claims = json!({
            "iss": self.issuer,
            "sub": format!("{run:016x}{i:016x}"),
            "scope": SYNC_SCOPE,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "fxa-generation": 1,
        });
        if let Some(audience) = &self.audience {
            claims["aud"] = json!(audience);
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        let jwt = jsonwebtoken::encode(&header, &claims, &self.key)
            .expect("an RSA key that loaded signs");
        let client_state: [u8; 16] = rand::rng().random();
        Credential {
            authorization: format!("Bearer {jwt}"),
            key_id: format!("1-{}", URL_SAFE_NO_PAD.encode(client_state)),
        }
    }

    /// Credentials of accounts 0..count of run `run`, signed on every core.
    fn sign_many(&self, run: u64, count: usize) -> Vec<Credential> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(count.max(1));
        let chunk = count.div_ceil(threads).max(1);
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..count)
                    .step_by(chunk)
                    .map(|start| {
                        let end = (start + chunk).min(count);
                        scope.spawn(move || {
                            (start..end)
                                .map(|i| self.sign(run, i as u64))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("a signing thread panicked"))
                    .collect()
            })
        })
    }
}

/// The new-user phase's tokens: pre-signed, used once each, then (if the phase outruns
/// them) signed one by one, which is counted.
struct FreshTokens {
    tokens: Vec<Credential>,
    next: AtomicUsize,
    run: u64,
    signer: Arc<Signer>,
    signed_late: AtomicU64,
}

impl FreshTokens {
    fn next(&self) -> Credential {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match self.tokens.get(i) {
            Some(credential) => credential.clone(),
            None => {
                self.signed_late.fetch_add(1, Ordering::Relaxed);
                self.signer.sign(self.run, i as u64)
            }
        }
    }
}

/// Sends one token request; `Ok` when it answered 200 with an `api_endpoint`, otherwise
/// what it answered.
async fn request(
    http: &reqwest::Client,
    endpoint: &str,
    credential: &Credential,
) -> Result<(), String> {
    let response = http
        .get(endpoint)
        .header("authorization", &credential.authorization)
        .header("x-keyid", &credential.key_id)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let answered = || format!("{status}: {}", String::from_utf8_lossy(&body));
    if status != reqwest::StatusCode::OK {
        return Err(answered());
    }
    let parsed: Value = serde_json::from_slice(&body).map_err(|_| answered())?;
    match parsed["api_endpoint"].as_str() {
        Some(endpoint) if !endpoint.is_empty() => Ok(()),
        _ => Err(answered()),
    }
}

/// Asks once for every credential, `concurrency` at a time, unmeasured; fails on the first
/// refusal. Returns the requests per second it achieved.
async fn warm_up(
    http: &reqwest::Client,
    endpoint: &str,
    credentials: &Arc<Vec<Credential>>,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let began = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.min(credentials.len()) {
        let (http, endpoint) = (http.clone(), endpoint.to_owned());
        let (credentials, next) = (credentials.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(credential) = credentials.get(i) else {
                    return Ok::<(), String>(());
                };
                request(&http, &endpoint, credential).await?;
            }
        }));
    }
    for worker in workers {
        if let Err(answer) = worker.await? {
            bail!(
                "the token server refused a warm-up request ({answer}): does it trust this issuer's jwks.json?"
            );
        }
    }
    Ok(credentials.len() as f64 / began.elapsed().as_secs_f64())
}

/// One measured operation: `concurrency` workers sending requests with the credentials
/// `next` gives until `duration` is over.
struct Phase {
    op: &'static str,
    http: reqwest::Client,
    endpoint: String,
    concurrency: usize,
    duration: Duration,
    next: Arc<dyn Fn() -> Credential + Send + Sync>,
}

impl Phase {
    async fn run(self) -> anyhow::Result<Vec<Row>> {
        let secs = self.duration.as_secs();
        eprintln!(
            "{}: {} s with {} requests in flight",
            self.op, secs, self.concurrency
        );
        let progress = Arc::new(AtomicU64::new(0));
        let bar = indicatif::ProgressBar::new(secs);
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
        let first_error = Arc::new(Mutex::new(None::<String>));
        let started = Instant::now();
        let deadline = started + self.duration;
        let mut workers = Vec::new();
        for _ in 0..self.concurrency {
            let (http, endpoint, next) =
                (self.http.clone(), self.endpoint.clone(), self.next.clone());
            let (progress, first_error, op) = (progress.clone(), first_error.clone(), self.op);
            workers.push(tokio::spawn(async move {
                let mut recorder = Recorder::default();
                while Instant::now() < deadline {
                    let credential = next();
                    let began = Instant::now();
                    let outcome = request(&http, &endpoint, &credential).await;
                    recorder.record(op, began.elapsed(), outcome.is_ok());
                    progress.fetch_add(1, Ordering::Relaxed);
                    if let Err(answer) = outcome {
                        first_error.lock().await.get_or_insert(answer);
                    }
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
        if let Some(answer) = first_error.lock().await.take() {
            eprintln!("{}: first error: {answer}", self.op);
        }
        Ok(total.operation_rows(elapsed))
    }
}
