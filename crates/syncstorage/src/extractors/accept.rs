//! Output format negotiation for collection listings.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use sync_proto::WeaveError;

use crate::error::ApiError;

/// How a listing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON array.
    Json,
    /// One JSON value per line.
    Newlines,
}

impl OutputFormat {
    /// Picks the first supported type of an `Accept` header; no header, a wildcard or an
    /// unreadable header means JSON, a list of only unsupported types is refused.
    pub fn negotiate(accept: Option<&str>) -> Option<Self> {
        let Some(accept) = accept else {
            return Some(OutputFormat::Json);
        };
        let mut any_type = false;
        for media in accept.split(',') {
            let media = media
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if media.is_empty() {
                continue;
            }
            any_type = true;
            match media.as_str() {
                "application/json" | "*/*" | "application/*" => return Some(OutputFormat::Json),
                "application/newlines" => return Some(OutputFormat::Newlines),
                _ => {}
            }
        }
        if any_type {
            None
        } else {
            Some(OutputFormat::Json)
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OutputFormat {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let accept = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        OutputFormat::negotiate(accept).ok_or_else(|| {
            ApiError::status(
                StatusCode::NOT_ACCEPTABLE,
                WeaveError::Unknown,
                format!("unsupported Accept {accept:?}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates() {
        use OutputFormat::*;
        assert_eq!(OutputFormat::negotiate(None), Some(Json));
        assert_eq!(OutputFormat::negotiate(Some("*/*")), Some(Json));
        assert_eq!(
            OutputFormat::negotiate(Some("application/newlines")),
            Some(Newlines)
        );
        assert_eq!(
            OutputFormat::negotiate(Some("text/html, application/json;q=0.9")),
            Some(Json)
        );
        assert_eq!(OutputFormat::negotiate(Some("x/yy")), None);
        assert_eq!(OutputFormat::negotiate(Some("text/plain")), None);
    }
}
