//! Keeps a kept-alive HTTP/1 connection usable when a request is answered without its body
//! being read to the end.
//!
//! A handler that refuses a request early (413 on `Content-Length`, 401 before the body is
//! needed, a malformed first chunk) leaves the rest of the body unread on the socket. Hyper
//! then closes the connection after the answer without saying so, and a client that sent its
//! next request on that connection sees it closed with no answer. This middleware reads and
//! discards what is left (never buffering it) before the answer goes out, so the connection
//! stays in step; when that would cost too much (over [`DRAIN_LIMIT`] or [`DRAIN_TIME`]) it
//! marks the answer `Connection: close`, so the client knows not to reuse the connection.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;

/// Most bytes of an unread request body read and thrown away to keep a connection.
pub const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;
/// Longest time spent reading an unread request body to keep a connection.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// What became of a request body once the handler let go of it.
enum BodyFate {
    /// Still held somewhere (or never dropped): nothing is known.
    Held,
    /// Read to its end, or empty: the connection is in step.
    Finished,
    /// Dropped before its end: the rest, to drain.
    Unread(Body),
}

/// The request body as handlers see it: the real body, reporting its fate when dropped.
struct TrackedBody {
    inner: Option<Body>,
    fate: Arc<Mutex<BodyFate>>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        let fate = match self.inner.take() {
            Some(body) if !http_body::Body::is_end_stream(&body) => BodyFate::Unread(body),
            _ => BodyFate::Finished,
        };
        *self.fate.lock().unwrap_or_else(PoisonError::into_inner) = fate;
    }
}

/// The middleware: see the module's documentation.
pub async fn drain_unread_body(request: Request, next: Next) -> Response {
    let keeps_alive = matches!(request.version(), Version::HTTP_10 | Version::HTTP_11);
    let (parts, body) = request.into_parts();
    let fate = Arc::new(Mutex::new(BodyFate::Held));
    let tracked = TrackedBody {
        inner: Some(body),
        fate: fate.clone(),
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let mut response = next
        .run(Request::from_parts(parts, Body::new(tracked)))
        .await;
    if !keeps_alive {
        return response;
    }
    let fate = std::mem::replace(
        &mut *fate.lock().unwrap_or_else(PoisonError::into_inner),
        BodyFate::Finished,
    );
    let in_step = match fate {
        BodyFate::Finished => true,
        BodyFate::Unread(rest) => drain(rest).await,
        BodyFate::Held => false,
    };
    if !in_step {
        tracing::info!(%method, %path, status = response.status().as_u16(), "request body left unread: closing the connection after the answer");
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads `body` to its end and throws it away; false when it is too long, too slow or broken.
async fn drain(mut body: Body) -> bool {
    if http_body::Body::size_hint(&body).lower() > DRAIN_LIMIT {
        return false;
    }
    let read_all = async {
        let mut read = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                read += data.len() as u64;
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read_all)
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::middleware::from_fn;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    async fn refuse() -> axum::http::StatusCode {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE
    }

    async fn read_all(body: Bytes) -> String {
        body.len().to_string()
    }

    fn app() -> Router {
        Router::new()
            .route("/refuse", post(refuse))
            .route("/read", post(read_all))
            .layer(from_fn(drain_unread_body))
    }

    fn post_request(path: &str, body: Vec<u8>) -> Request {
        Request::post(path).body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn an_unread_body_within_the_limit_is_drained_and_the_connection_kept() {
        let response = app()
            .oneshot(post_request("/refuse", vec![b'x'; 1 << 20]))
            .await
            .unwrap();
        assert_eq!(response.status(), 413);
        assert!(response.headers().get(header::CONNECTION).is_none());
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_keeps_the_connection() {
        let response = app()
            .oneshot(post_request("/read", vec![b'x'; 1000]))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get(header::CONNECTION).is_none());
    }

    #[tokio::test]
    async fn an_unread_body_over_the_limit_closes_the_connection() {
        let response = app()
            .oneshot(post_request(
                "/refuse",
                vec![b'x'; DRAIN_LIMIT as usize + 1],
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), 413);
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
