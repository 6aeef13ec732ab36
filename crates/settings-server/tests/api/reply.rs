//! One request to a test server and its answer, for every suite of this binary.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A server's answer: its status, headers and body (JSON, or the text as a JSON string
/// when the body is not JSON).
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

/// Sends `method path` to the server at `url`, as `user` (Basic auth with the tests'
/// password `<user>-password`) when given, with `headers` and a JSON `body`.
pub(crate) async fn send(
    http: &reqwest::Client,
    url: &str,
    method: Method,
    path: &str,
    user: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = http.request(method, format!("{url}{path}"));
    if let Some(user) = user {
        request = request.basic_auth(user, Some(format!("{user}-password")));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}
