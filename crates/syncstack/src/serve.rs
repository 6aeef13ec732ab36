//! `syncstack serve`: wires the configured services to their listeners and runs them until
//! SIGINT or SIGTERM.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use syncstorage::{AppState, NodeSettings};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Service, Settings};
use crate::secret::{master_secret, secret_path};
use crate::storage::open_storage;

/// Runs the services until a shutdown signal, then drains requests and closes databases.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let secret = master_secret(&settings, true)?;
    if !settings.services.contains(&Service::Storage) {
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

    let store = open_storage(&settings)?;
    let mut node = NodeSettings::new(public_url.clone(), secret);
    node.limits = settings.storage.limits;
    node.hawk_skew = Duration::from_secs(settings.storage.hawk_skew_secs);
    node.nonce_cache_capacity = settings.storage.nonce_cache_capacity;
    node.quota_enabled = settings.storage.quota_enabled;
    node.expired_token_grace = Duration::from_secs(settings.storage.expired_token_grace_secs);
    let state = AppState::new(store.clone(), node);

    let (stop_tx, stop_rx) = watch::channel(false);

    let metrics_task = match settings.metrics_listen {
        Some(addr) => {
            let metrics_listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for metrics on {addr}"))?;
            let bound = metrics_listener.local_addr()?;
            tracing::info!(url = %format!("http://{bound}/metrics"), "serving Prometheus metrics");
            let app = Router::new()
                .route("/metrics", get(render_metrics))
                .with_state(state.clone());
            let stop = wait_for(stop_rx.clone());
            Some(tokio::spawn(async move {
                axum::serve(metrics_listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }))
        }
        None => None,
    };
    let purge = syncstorage::spawn_purge(
        store.clone(),
        Duration::from_secs(settings.storage.purge_interval_secs.max(1)),
    );

    tracing::info!(
        listen = %bound,
        public_url = %public_url,
        data_dir = %settings.data_dir.display(),
        "syncstack storage node ready"
    );
    tracing::info!(
        "next: mint a token with `syncstack token mint --uid 1 --data-dir {}` and send Hawk-signed \
         requests to {}1.5/1/info/collections; the secret shared with a token server is in {}",
        settings.data_dir.display(),
        public_url,
        secret_path(&settings.data_dir).display(),
    );

    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    });
    syncstorage::serve(listener, state, wait_for(stop_rx)).await?;
    purge.abort();
    if let Some(task) = metrics_task {
        task.await??;
    }
    tracing::info!("stopped");
    Ok(())
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
