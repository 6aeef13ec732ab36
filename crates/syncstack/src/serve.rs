//! `syncstack serve`: wires the configured services to one listener and runs them until
//! SIGINT or SIGTERM, then drains requests and closes the databases.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use identity::IdentityProvider;
use settings_server::workflow::Workflow;
use syncstorage::{AppState, NodeSettings};
use tokenserver::remote::{RemoteIssuer, RemoteSettings};
use tokenserver::verifier::{TrustedIssuer, Verifier};
use tokenserver::{TokenServerSettings, TokenServerState};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::backends::{open_storage, open_token_store};
use crate::commands::accounts::open_identity;
use crate::config::{IssuerConfig, Service, Settings};
use crate::secret::{master_secret, secret_path};

/// Audience of the built-in identity provider's tokens.
const LOCAL_AUDIENCE: &str = "syncstack";
/// How often issuers' published key sets are fetched again.
const JWKS_REFRESH: Duration = Duration::from_secs(3600);

/// Runs the services until a shutdown signal.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let secret = master_secret(&settings, true)?;
    let runs = |service| settings.services.contains(&service);
    if settings.services.is_empty() {
        anyhow::bail!("no service to run: --services is empty");
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let bound = listener.local_addr()?;
    // With `--listen 127.0.0.1:0` the default public URL names the port actually bound.
    let public_url = match &settings.public_url {
        Some(_) => settings.public_url()?,
        None => Settings {
            listen: bound,
            ..settings.clone()
        }
        .public_url()?,
    };
    let node_url = public_url.as_str().trim_end_matches('/').to_owned();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut app = Router::new();
    let mut background = Vec::new();

    let storage = if runs(Service::Storage) {
        let store = open_storage(&settings).await?;
        let mut node = NodeSettings::new(public_url.clone(), secret.clone());
        node.limits = settings.storage.limits;
        node.hawk_skew = Duration::from_secs(settings.storage.hawk_skew_secs);
        node.nonce_cache_capacity = settings.storage.nonce_cache_capacity;
        node.quota_enabled = settings.storage.quota_enabled;
        node.expired_token_grace = Duration::from_secs(settings.storage.expired_token_grace_secs);
        let state = AppState::new(store.clone(), node);
        app = app.merge(syncstorage::router(state.clone()));
        background.push(syncstorage::spawn_purge(
            store,
            Duration::from_secs(settings.storage.purge_interval_secs.max(1)),
        ));
        Some(state)
    } else {
        None
    };

    let trust_local = runs(Service::Tokenserver) && settings.tokenserver.trust_local_identity;
    let idp = if runs(Service::Identity) || runs(Service::Accounts) || trust_local {
        Some(open_identity(&settings)?)
    } else {
        None
    };
    if runs(Service::Identity)
        && let Some(idp) = &idp
    {
        app = app.merge(identity::router(idp.clone()));
    }
    // The accounts service signs with the identity provider's key, so the token server
    // below only has to be told its issuer name and audience.
    let firefox_accounts = match (runs(Service::Accounts), &idp) {
        (true, Some(idp)) => {
            let service =
                crate::commands::accounts::open_accounts(&settings, &public_url, idp.clone())
                    .await?;
            app = app.merge(accounts::router(service.clone()));
            background.push(service.spawn_purge(Duration::from_secs(600)));
            tracing::info!(
                "accounts: set identity.fxaccounts.autoconfig.uri to {node_url} in Firefox's about:config"
            );
            Some(service)
        }
        _ => None,
    };

    if runs(Service::Tokenserver) {
        let store = open_token_store(&settings).await?;
        if storage.is_some() {
            let node = store
                .ensure_node(&node_url, settings.tokenserver.init_node_capacity)
                .await?;
            tracing::info!(node = %node.url, capacity = node.capacity, load = node.current_load, "this process's storage node is registered");
        }
        let verifier = Arc::new(Verifier::default());
        if let Some(idp) = idp.as_ref().filter(|_| trust_local) {
            let jwks = serde_json::to_string(&idp.jwks())?;
            verifier.trust(
                TrustedIssuer::from_jwks(idp.issuer(), Some(LOCAL_AUDIENCE.into()), &jwks)
                    .map_err(anyhow::Error::msg)?,
            );
        }
        if let (Some(service), Some(idp)) = (&firefox_accounts, &idp) {
            let jwks = serde_json::to_string(&idp.jwks())?;
            verifier.trust(
                TrustedIssuer::from_jwks(
                    service.issuer(),
                    Some(service.sync_audience().to_owned()),
                    &jwks,
                )
                .map_err(anyhow::Error::msg)?,
            );
        }
        for issuer in &settings.tokenserver.issuers {
            if let Some(remote) = remote_issuer(issuer)? {
                verifier.trust_remote(remote);
            }
            if issuer.verify_url.is_some() && !has_jwks(issuer) {
                continue;
            }
            verifier.trust(load_issuer(issuer).await?);
            if issuer.jwks_url.is_some() {
                background.push(spawn_jwks_refresh(verifier.clone(), issuer.clone()));
            }
        }
        if !verifier.trusts_anyone() {
            tracing::warn!(
                "the token server trusts no issuer: every token request will be refused"
            );
        }
        let metrics_key = match &settings.tokenserver.metrics_hash_secret {
            Some(key) => key.as_bytes().to_vec(),
            None => secret.derive("tokenserver-metrics-hash").to_vec(),
        };
        let mut token_settings = TokenServerSettings::new(secret.clone(), metrics_key);
        token_settings.token_duration = settings.tokenserver.token_duration_secs;
        token_settings.allow_new_users = settings.tokenserver.allow_new_users;
        token_settings.node_type = settings.tokenserver.node_type.clone();
        token_settings.email_domain = settings.tokenserver.email_domain.clone();
        let state = TokenServerState {
            store,
            verifier,
            settings: Arc::new(token_settings),
        };
        app = app.merge(tokenserver::router(state.clone()));
        if storage.is_none() {
            app = app.merge(tokenserver::ops_router(state));
        }
    }
    if runs(Service::Settings) {
        let store = crate::backends::open_settings_store(&settings).await?;
        let signer = crate::commands::settings::resolved_signer(&settings);
        let workflow = Arc::new(
            Workflow::new(signer, public_url.as_str())
                .context("loading the Remote Settings signer ([signer])")?,
        );
        let mut kinto = settings.settings.clone();
        if let Some(dir) = &kinto.admin_dir {
            settings_server::admin::check_dir(dir).map_err(anyhow::Error::msg)?;
        }
        // Attachments are on by default, beside the database.
        if kinto.attachment_base_path.is_none() {
            kinto.attachment_base_path =
                Some(settings.data_dir.join("attachments").display().to_string());
        }
        let state = settings_server::SettingsState::new(store, kinto).with_hooks(workflow.clone());
        // Signatures must never outlive their certificate: re-sign at start what another
        // certificate signed, then periodically everything.
        workflow.resign_at_start(&state).await;
        background.push(workflow.spawn_resign_job(state.clone()));
        app = app.merge(settings_server::router(state));
    }
    if runs(Service::Easysetup) {
        let relay = easysetup::channel::ChannelServer::new(settings.easysetup.clone());
        app = app.merge(easysetup::channel::router(relay));
    }
    let mut app = app.layer(crate::http::compression_layer());
    if let Some(cors) = crate::http::cors_layer(&settings.cors)? {
        app = app.layer(cors);
    }
    let app = app
        .layer(TraceLayer::new_for_http().on_response(DefaultOnResponse::new().level(Level::INFO)))
        .layer(axum::middleware::from_fn(
            crate::http::drain::drain_unread_body,
        ));

    if let (Some(addr), Some(state)) = (settings.metrics_listen, &storage) {
        let metrics_listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for metrics on {addr}"))?;
        let bound = metrics_listener.local_addr()?;
        tracing::info!(url = %format!("http://{bound}/metrics"), "serving Prometheus metrics");
        let metrics = Router::new()
            .route("/metrics", get(render_metrics))
            .with_state(state.clone());
        let stop = wait_for(stop_rx.clone());
        background.push(tokio::spawn(async move {
            if let Err(error) = axum::serve(metrics_listener, metrics)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(%error, "metrics listener failed");
            }
        }));
    }

    announce(&settings, &public_url, &node_url, idp.as_ref());
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    });
    // The pairing relay limits requests per client address, which needs the peer address.
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(wait_for(stop_rx))
        .await?;
    for task in background {
        task.abort();
    }
    if let Some(state) = storage {
        state.store.close().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Logs what runs where, and what to do next.
fn announce(
    settings: &Settings,
    public_url: &url::Url,
    node_url: &str,
    idp: Option<&IdentityProvider>,
) {
    let services: Vec<String> = settings
        .services
        .iter()
        .map(|s| format!("{s:?}").to_lowercase())
        .collect();
    tracing::info!(
        listen = %settings.listen,
        public_url = %public_url,
        services = %services.join(","),
        data_dir = %settings.data_dir.display(),
        "syncstack ready"
    );
    if settings.services.contains(&Service::Storage) {
        tracing::info!(public_url = %public_url, "syncstack storage node ready");
    }
    if settings.services.contains(&Service::Tokenserver) {
        tracing::info!(
            "token server: point Sync clients at {node_url}/1.0/sync/1.5{}",
            if idp.is_some() {
                "; create a local account with `syncstack accounts add NAME` and get an access token with `syncstack accounts token NAME`"
            } else {
                ""
            }
        );
    }
    if settings.services.contains(&Service::Easysetup) {
        tracing::info!(
            "pairing relay: `syncstack pair offer` on a logged-in device, `syncstack pair accept CODE --server {node_url}` on a new one"
        );
    }
    if settings.services.contains(&Service::Storage) {
        tracing::info!(
            "storage node: `syncstack token mint --uid 1` gives credentials without a token server; the secret shared with token servers is in {}",
            secret_path(&settings.data_dir).display()
        );
    }
}

/// Whether the issuer's entry gives a key set (an issuer with only a `verify_url` has none).
fn has_jwks(issuer: &IssuerConfig) -> bool {
    issuer.jwks.is_some() || issuer.jwks_file.is_some() || issuer.jwks_url.is_some()
}

/// The issuer's verification endpoint for opaque tokens, if it has one.
fn remote_issuer(issuer: &IssuerConfig) -> anyhow::Result<Option<RemoteIssuer>> {
    let Some(url) = &issuer.verify_url else {
        return Ok(None);
    };
    let defaults = RemoteSettings::default();
    let remote = RemoteSettings {
        timeout: issuer
            .verify_timeout_secs
            .map_or(defaults.timeout, Duration::from_secs),
        cache_ttl: issuer
            .verify_cache_secs
            .map_or(defaults.cache_ttl, Duration::from_secs),
        ..defaults
    };
    Ok(Some(
        RemoteIssuer::new(&issuer.issuer, url, &remote).map_err(anyhow::Error::msg)?,
    ))
}

/// Builds a trusted issuer from its configured key set.
async fn load_issuer(issuer: &IssuerConfig) -> anyhow::Result<TrustedIssuer> {
    let jwks = match (&issuer.jwks, &issuer.jwks_file, &issuer.jwks_url) {
        (Some(inline), None, None) => inline.clone(),
        (None, Some(file), None) => std::fs::read_to_string(file).with_context(|| {
            format!(
                "reading the JWKS of {} from {}",
                issuer.issuer,
                file.display()
            )
        })?,
        (None, None, Some(url)) => fetch_jwks(url).await?,
        _ => anyhow::bail!(
            "issuer {}: give exactly one of jwks, jwks_file, jwks_url (or only verify_url)",
            issuer.issuer
        ),
    };
    TrustedIssuer::from_jwks(&issuer.issuer, issuer.audience.clone(), &jwks)
        .map_err(anyhow::Error::msg)
}

async fn fetch_jwks(url: &str) -> anyhow::Result<String> {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?
        .get(url)
        .send()
        .await
        .with_context(|| format!("fetching JWKS from {url}"))?;
    if !response.status().is_success() {
        anyhow::bail!("fetching JWKS from {url}: {}", response.status());
    }
    Ok(response.text().await?)
}

/// Fetches an issuer's key set again every hour, keeping the old keys if a fetch fails.
fn spawn_jwks_refresh(
    verifier: Arc<Verifier>,
    issuer: IssuerConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(JWKS_REFRESH).await;
            match load_issuer(&issuer).await {
                Ok(trusted) => verifier.trust(trusted),
                Err(error) => {
                    tracing::warn!(issuer = %issuer.issuer, %error, "refreshing JWKS failed; keeping the old keys")
                }
            }
        }
    })
}

async fn render_metrics(State(state): State<AppState>) -> String {
    state.metrics.render(state.store.pool_state())
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
}
