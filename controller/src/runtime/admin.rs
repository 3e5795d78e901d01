//! The admin server: /livez, /readyz and /metrics (OpenMetrics).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics::Metrics;

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    health: Arc<Health>,
}

/// What the admin server reports.
#[derive(Default)]
pub struct Health {
    pub(crate) caches_synced: AtomicBool,
    pub(crate) leadership_known: AtomicBool,
    pub(crate) leading: AtomicBool,
    pub(crate) rollouts_synced: AtomicBool,
}

impl Health {
    /// Ready once every cache has synced and leadership is known; a leader also needs its
    /// Rollouts listed.
    pub fn ready(&self) -> bool {
        let leading = self.leading.load(Ordering::SeqCst);
        self.caches_synced.load(Ordering::SeqCst)
            && self.leadership_known.load(Ordering::SeqCst)
            && (!leading || self.rollouts_synced.load(Ordering::SeqCst))
    }

    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }
}

pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics, health: Arc<Health>) {
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { metrics, health });
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "admin server stopped");
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match (state.health.ready(), state.health.leading()) {
        (true, true) => (StatusCode::OK, "ready: leading"),
        (true, false) => (StatusCode::OK, "ready: standby"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: caches are syncing"),
    }
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.metrics.encode())
}
