//! What `serve` adds around every service: CORS (preflights and the headers browser clients
//! read), compressed answers, and kept-alive connections that survive refused requests.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::process::Node;

/// One path of each service, as a browser client would call it.
const SERVICE_PATHS: [(&str, &str); 5] = [
    ("storage", "/1.5/1/__heartbeat__"),
    ("tokenserver", "/1.0/sync/1.5"),
    ("identity", "/identity/jwks.json"),
    ("settings", "/v1/buckets/main/collections/x/records"),
    ("easysetup", "/easysetup/new_channel"),
];

#[tokio::test]
async fn every_service_answers_cors_preflights_and_exposes_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), &[], &[]).await;
    let http = reqwest::Client::new();
    for (service, path) in SERVICE_PATHS {
        let preflight = http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", node.url))
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "PUT")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 200, "{service} preflight");
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{service}");
        assert_eq!(headers["access-control-max-age"], "3600", "{service}");
        let methods = headers["access-control-allow-methods"].to_str().unwrap();
        assert!(methods.contains("PUT"), "{service}: {methods}");
        let allowed = headers["access-control-allow-headers"].to_str().unwrap();
        assert!(allowed.contains("authorization"), "{service}: {allowed}");

        let actual = http
            .get(format!("{}{path}", node.url))
            .header("Origin", "https://app.example")
            .send()
            .await
            .unwrap();
        let headers = actual.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{service}");
        let exposed = headers["access-control-expose-headers"].to_str().unwrap();
        for name in [
            "x-weave-timestamp",
            "x-last-modified",
            "etag",
            "next-page",
            "retry-after",
        ] {
            assert!(
                exposed.contains(name),
                "{service} exposes {name}: {exposed}"
            );
        }
    }
    node.stop().await;
}

#[tokio::test]
async fn cors_origins_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(
        dir.path(),
        &[],
        &[(
            "SYNCSTACK_CORS__ALLOWED_ORIGINS",
            "https://admin.example https://other.example",
        )],
    )
    .await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{}/v1/", node.url))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .send()
    };
    let allowed = preflight("https://admin.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://admin.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    node.stop().await;
}

#[tokio::test]
async fn large_answers_are_compressed_as_the_client_asks() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), &[], &[]).await;
    let http = reqwest::Client::new();
    let v1 = format!("{}/v1", node.url);
    http.put(format!("{v1}/accounts/ed"))
        .json(&json!({"data": {"password": "ed-password"}}))
        .send()
        .await
        .unwrap();
    let records = format!("{v1}/buckets/b/collections/c/records");
    http.put(format!("{v1}/buckets/b"))
        .basic_auth("ed", Some("ed-password"))
        .send()
        .await
        .unwrap();
    http.put(format!("{v1}/buckets/b/collections/c"))
        .basic_auth("ed", Some("ed-password"))
        .send()
        .await
        .unwrap();
    for i in 0..20 {
        let created = http
            .post(&records)
            .basic_auth("ed", Some("ed-password"))
            .json(&json!({"data": {"text": format!("record number {i} with some words in it")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    for (encoding, magic) in [("gzip", &[0x1f_u8, 0x8b][..]), ("br", &[][..])] {
        let answer = http
            .get(&records)
            .basic_auth("ed", Some("ed-password"))
            .header("Accept-Encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["content-encoding"], encoding);
        let body = answer.bytes().await.unwrap();
        assert!(body.starts_with(magic));
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    }
    let plain = http
        .get(&records)
        .basic_auth("ed", Some("ed-password"))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let body: serde_json::Value = plain.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 20);
    node.stop().await;
}

/// Sends one request on `stream` and reads its answer: status and headers (lowercased).
async fn exchange(
    stream: &mut BufReader<TcpStream>,
    head: &str,
    body: &[u8],
) -> (u16, Vec<String>) {
    let request = format!(
        "{head}\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    stream.get_mut().write_all(body).await.unwrap();
    let mut status_line = String::new();
    stream.read_line(&mut status_line).await.unwrap();
    assert!(
        !status_line.is_empty(),
        "{head}: connection closed with no answer"
    );
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("content-length: ") {
            length = n.parse().unwrap();
        }
        headers.push(line);
    }
    let mut answer = vec![0; length];
    stream.read_exact(&mut answer).await.unwrap();
    (status, headers)
}

#[tokio::test]
async fn a_refused_large_body_leaves_the_connection_usable() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), &[], &[]).await;
    let address = node.url.trim_start_matches("http://").to_owned();
    let mut stream = BufReader::new(TcpStream::connect(&address).await.unwrap());
    let too_large = vec![b'{'; 2 * 1024 * 1024];
    let endpoints = [
        "POST /v1/buckets HTTP/1.1\r\nContent-Type: application/json",
        "POST /1.5/1/storage/bookmarks HTTP/1.1\r\nContent-Type: application/json",
        "POST /identity/v1/token HTTP/1.1\r\nContent-Type: application/json",
    ];
    for head in endpoints {
        let (status, headers) = tokio::time::timeout(
            Duration::from_secs(30),
            exchange(&mut stream, head, &too_large),
        )
        .await
        .unwrap();
        assert!((400..500).contains(&status), "{head}: {status}");
        assert!(
            !headers.iter().any(|h| h == "connection: close"),
            "{head}: {headers:?}"
        );
        // The same connection answers the next request.
        let (status, _) = exchange(&mut stream, "GET /__lbheartbeat__ HTTP/1.1", b"").await;
        assert_eq!(status, 200, "after {head}");
    }
    // A body too large to drain ends the connection, and the answer says so.
    let huge = vec![b'x'; 20 * 1024 * 1024];
    let write = async {
        let request = format!(
            "POST /v1/buckets HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            huge.len()
        );
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let _ = stream.get_mut().write_all(&huge).await;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer).await;
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(30), write)
        .await
        .unwrap();
    if !answer.is_empty() {
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    node.stop().await;
}
