//! The Easy Setup channel relay over a real socket, driven with reqwest.
//!
//! Each test starts its own relay on 127.0.0.1:0, so rate limits never leak between tests.

use std::net::SocketAddr;
use std::time::Duration;

use easysetup::channel::{ChannelServer, ChannelSettings, router};
use reqwest::header::{IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

const ALPHABET: &str = "23456789abcdefghijkmnpqrstuvwxyz";

/// A running relay and a client for it.
struct Relay {
    base: String,
    http: reqwest::Client,
}

impl Relay {
    async fn start(settings: ChannelSettings) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/easysetup", listener.local_addr().unwrap());
        let app = router(ChannelServer::new(settings));
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Relay {
            base,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn default() -> Relay {
        Relay::start(ChannelSettings::default()).await
    }

    /// A request on `/easysetup/<path>`, carrying `client` as `X-KeyExchange-Id`.
    fn request(&self, method: Method, path: &str, client: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, format!("{}/{path}", self.base));
        match client {
            Some(client) => request.header("X-KeyExchange-Id", client),
            None => request,
        }
    }

    async fn create(&self, client: &str) -> String {
        let response = self.new_channel(client).await;
        assert_eq!(response.status(), StatusCode::OK);
        let header = header(&response, "x-keyexchange-channel").unwrap();
        let body: String = response.json().await.unwrap();
        assert_eq!(body, header);
        body
    }

    async fn new_channel(&self, client: &str) -> Response {
        self.request(Method::GET, "new_channel", Some(client))
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, cid: &str, client: &str) -> Response {
        self.request(Method::GET, cid, Some(client))
            .send()
            .await
            .unwrap()
    }

    async fn get_if_none_match(&self, cid: &str, client: &str, etag: &str) -> Response {
        self.request(Method::GET, cid, Some(client))
            .header(IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap()
    }

    fn put(&self, cid: &str, client: &str, body: &str) -> RequestBuilder {
        self.request(Method::PUT, cid, Some(client))
            .body(body.to_owned())
    }

    async fn report(&self, client: &str, cid: &str) -> Response {
        self.request(Method::POST, "report", Some(client))
            .header("X-KeyExchange-Cid", cid)
            .header("X-KeyExchange-Log", "jpake.error.userabort")
            .send()
            .await
            .unwrap()
    }
}

/// A well-formed client id made of one repeated hex digit.
fn client(digit: char) -> String {
    digit.to_string().repeat(256)
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn error_reason(response: Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn creation_returns_the_id_in_body_and_header() {
    let relay = Relay::default().await;
    let first = relay.create(&client('a')).await;
    assert_eq!(first.len(), 4);
    assert!(first.chars().all(|c| ALPHABET.contains(c)), "{first}");
    let second = relay.create(&client('a')).await;
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_fresh_channel_reads_as_an_empty_object_without_etag() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;
    let response = relay.get(&cid, &client('a')).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "content-type").unwrap(),
        "application/json"
    );
    assert_eq!(header(&response, "etag"), None);
    assert_eq!(response.text().await.unwrap(), "{}");
}

#[tokio::test]
async fn if_none_match_star_applies_once_and_412_carries_the_attempted_etag() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;
    let body = r#"{"type":"receiver1","version":3,"payload":{"gx1":"00"}}"#;

    let first = relay
        .put(&cid, &client('a'), body)
        .header(IF_NONE_MATCH, "*")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let etag = header(&first, "etag").unwrap();

    // A retry of the same PUT: refused, but with the ETag the client already holds.
    let retry = relay
        .put(&cid, &client('a'), body)
        .header(IF_NONE_MATCH, "*")
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(header(&retry, "etag").unwrap(), etag);
    assert_eq!(error_reason(retry).await, "precondition_failed");

    // A different body: refused with that body's ETag, and the channel is unchanged.
    let other = relay
        .put(&cid, &client('a'), r#"{"type":"other"}"#)
        .header(IF_NONE_MATCH, "*")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::PRECONDITION_FAILED);
    assert_ne!(header(&other, "etag").unwrap(), etag);

    let read = relay.get(&cid, &client('a')).await;
    assert_eq!(header(&read, "etag").unwrap(), etag);
    assert_eq!(read.text().await.unwrap(), body, "stored verbatim");
}

#[tokio::test]
async fn if_match_applies_only_with_the_current_etag_or_star() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;

    // No ETag yet, so no tag can match.
    let early = relay
        .put(&cid, &client('a'), r#"{"n":0}"#)
        .header(IF_MATCH, "\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), StatusCode::PRECONDITION_FAILED);

    let first = relay
        .put(&cid, &client('a'), r#"{"n":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let etag1 = header(&first, "etag").unwrap();

    let wrong = relay
        .put(&cid, &client('b'), r#"{"n":2}"#)
        .header(IF_MATCH, "\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::PRECONDITION_FAILED);

    let right = relay
        .put(&cid, &client('b'), r#"{"n":2}"#)
        .header(IF_MATCH, &etag1)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let etag2 = header(&right, "etag").unwrap();
    assert_ne!(etag1, etag2);

    // The tag is also accepted bare, as old clients may echo it.
    let bare = relay
        .put(&cid, &client('a'), r#"{"n":3}"#)
        .header(IF_MATCH, etag2.trim_matches('"'))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::OK);

    let stale = relay
        .put(&cid, &client('a'), r#"{"n":4}"#)
        .header(IF_MATCH, &etag1)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    let star = relay
        .put(&cid, &client('a'), r#"{"n":5}"#)
        .header(IF_MATCH, "*")
        .send()
        .await
        .unwrap();
    assert_eq!(star.status(), StatusCode::OK);
    let read = relay.get(&cid, &client('b')).await;
    assert_eq!(read.text().await.unwrap(), r#"{"n":5}"#);
}

#[tokio::test]
async fn if_none_match_on_get_is_304_and_does_not_count_toward_max_gets() {
    let relay = Relay::start(ChannelSettings {
        max_gets: 2,
        ..ChannelSettings::default()
    })
    .await;
    let cid = relay.create(&client('a')).await;
    let put = relay.put(&cid, &client('a'), "{}").send().await.unwrap();
    let etag = header(&put, "etag").unwrap();

    assert_eq!(relay.get(&cid, &client('b')).await.status(), StatusCode::OK);
    for _ in 0..5 {
        let polled = relay.get_if_none_match(&cid, &client('a'), &etag).await;
        assert_eq!(polled.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&polled, "etag").unwrap(), etag);
        assert_eq!(polled.text().await.unwrap(), "");
    }
    let other = relay
        .get_if_none_match(&cid, &client('a'), "\"something-else\"")
        .await;
    assert_eq!(other.status(), StatusCode::OK, "the second counted GET");
    assert_eq!(
        relay.get(&cid, &client('a')).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_channel_is_deleted_after_max_gets() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;
    for n in 0..6 {
        let reader = if n % 2 == 0 { client('a') } else { client('b') };
        assert_eq!(relay.get(&cid, &reader).await.status(), StatusCode::OK);
    }
    let gone = relay.get(&cid, &client('a')).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_reason(gone).await, "unknown_channel");
}

/// The message sequence of spec §8.3 fits exactly in the default limits: six counted GETs,
/// any number of polls, and the channel is gone afterwards.
#[tokio::test]
async fn a_full_pairing_exchange_goes_through() {
    let relay = Relay::default().await;
    let (r, s) = (client('1'), client('2'));
    let cid = relay.create(&r).await;

    let put = |who: &str, body: &str, condition: (reqwest::header::HeaderName, String)| {
        relay.put(&cid, who, body).header(condition.0, condition.1)
    };
    let sent = put(&r, r#"{"type":"receiver1"}"#, (IF_NONE_MATCH, "*".into()))
        .send()
        .await
        .unwrap();
    let mut etag = header(&sent, "etag").unwrap();
    let polled = relay.get_if_none_match(&cid, &r, &etag).await;
    assert_eq!(polled.status(), StatusCode::NOT_MODIFIED);

    // The ETag of the writer's own last message; the sender has none yet.
    let mut own: Option<String> = None;
    let steps = [
        (&s, "sender1"),
        (&r, "receiver2"),
        (&s, "sender2"),
        (&r, "receiver3"),
        (&s, "sender3"),
    ];
    for (writer, kind) in steps {
        // The writer first reads its peer's message (a counted GET)...
        let read = match &own {
            Some(own) => relay.get_if_none_match(&cid, writer, own).await,
            None => relay.get(&cid, writer).await,
        };
        assert_eq!(read.status(), StatusCode::OK);
        assert_eq!(header(&read, "etag").unwrap(), etag);
        // ...then answers it.
        let body = format!(r#"{{"type":"{kind}"}}"#);
        let sent = put(writer, &body, (IF_MATCH, etag.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), StatusCode::OK, "{kind}");
        own = Some(etag);
        etag = header(&sent, "etag").unwrap();
    }
    let last = relay
        .get_if_none_match(&cid, &r, own.as_deref().unwrap())
        .await;
    assert_eq!(last.status(), StatusCode::OK);
    assert_eq!(last.text().await.unwrap(), r#"{"type":"sender3"}"#);
    assert_eq!(relay.get(&cid, &r).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn channels_expire_their_ttl_after_creation() {
    let relay = Relay::start(ChannelSettings {
        channel_ttl_secs: 1,
        ..ChannelSettings::default()
    })
    .await;
    let cid = relay.create(&client('a')).await;
    assert_eq!(relay.get(&cid, &client('a')).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        relay.get(&cid, &client('a')).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_third_client_id_destroys_the_channel() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;
    assert_eq!(relay.get(&cid, &client('b')).await.status(), StatusCode::OK);

    let intruder = relay.get(&cid, &client('c')).await;
    assert_eq!(intruder.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_reason(intruder).await, "too_many_clients");

    assert_eq!(
        relay.get(&cid, &client('a')).await.status(),
        StatusCode::NOT_FOUND
    );
    let put = relay.put(&cid, &client('b'), "{}").send().await.unwrap();
    assert_eq!(put.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_third_client_writing_destroys_the_channel_even_with_a_refused_body() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;
    assert_eq!(relay.get(&cid, &client('b')).await.status(), StatusCode::OK);
    let intruder = relay.put(&cid, &client('c'), "[]").send().await.unwrap();
    assert_eq!(intruder.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_reason(intruder).await, "too_many_clients");
    assert_eq!(
        relay.get(&cid, &client('b')).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_missing_or_malformed_client_id_is_400() {
    let relay = Relay::default().await;
    let bad_ids = [
        client('a').to_uppercase(),
        "a".repeat(255),
        "a".repeat(257),
        format!("{}g", "a".repeat(255)),
    ];
    for bad in &bad_ids {
        let response = relay.new_channel(bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_reason(response).await, "bad_client_id");
    }
    let missing = relay
        .request(Method::GET, "new_channel", None)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    // On a channel, a bad id destroys the channel as well (spec §8.2).
    let cid = relay.create(&client('a')).await;
    let missing = relay.request(Method::GET, &cid, None).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        relay.get(&cid, &client('a')).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413() {
    let relay = Relay::start(ChannelSettings {
        max_body_bytes: 1000,
        ..ChannelSettings::default()
    })
    .await;
    let cid = relay.create(&client('a')).await;
    let fits = format!(r#"{{"p":"{}"}}"#, "x".repeat(1000 - 8));
    assert_eq!(fits.len(), 1000);
    let response = relay.put(&cid, &client('a'), &fits).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let too_large = format!(r#"{{"p":"{}"}}"#, "x".repeat(1000 - 7));
    let response = relay
        .put(&cid, &client('a'), &too_large)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_reason(response).await, "body_too_large");
    let read = relay.get(&cid, &client('a')).await;
    assert_eq!(read.text().await.unwrap(), fits);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_400() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;
    for body in [
        "", "[]", "\"text\"", "42", "null", "{\"a\":", "{} {}", "not json",
    ] {
        let response = relay.put(&cid, &client('a'), body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(error_reason(response).await, "body_not_a_json_object");
    }
    let padded = relay
        .put(&cid, &client('a'), " \n{\"a\": [1, 2]}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(padded.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_report_from_a_registered_client_deletes_the_channel() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;
    assert_eq!(relay.get(&cid, &client('b')).await.status(), StatusCode::OK);

    // Someone not on the channel cannot tear it down by report.
    assert_eq!(
        relay.report(&client('c'), &cid).await.status(),
        StatusCode::OK
    );
    assert_eq!(relay.get(&cid, &client('a')).await.status(), StatusCode::OK);

    assert_eq!(
        relay.report(&client('b'), &cid).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        relay.get(&cid, &client('a')).await.status(),
        StatusCode::NOT_FOUND
    );

    // A report needs neither a client id nor a channel.
    let bare = relay
        .request(Method::POST, "report", None)
        .body("jpake.error.network")
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::OK);
    let long = relay
        .request(Method::POST, "report", None)
        .body("x".repeat(2001))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn delete_deletes_the_channel() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;
    let deleted = relay
        .request(Method::DELETE, &cid, Some(&client('a')))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(
        relay.get(&cid, &client('a')).await.status(),
        StatusCode::NOT_FOUND
    );
    let again = relay
        .request(Method::DELETE, &cid, Some(&client('a')))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_eleventh_creation_in_a_minute_blocks_the_address() {
    let relay = Relay::default().await;
    let mut cid = String::new();
    for _ in 0..10 {
        cid = relay.create(&client('a')).await;
    }
    let refused = relay.new_channel(&client('a')).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&refused, "retry-after").unwrap(), "600");
    assert_eq!(error_reason(refused).await, "blocked");

    // Blocked everywhere, not only on creation.
    assert_eq!(
        relay.get(&cid, &client('a')).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        relay.report(&client('a'), &cid).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn guessing_channel_ids_gets_the_address_blocked() {
    let relay = Relay::default().await;
    let cid = relay.create(&client('a')).await;
    let guesses = ["2222", "3333", "4444", "5555", "6666", "7777"]
        .into_iter()
        .filter(|guess| *guess != cid)
        .cycle();
    for guess in guesses.clone().take(30) {
        let response = relay.get(guess, &client('b')).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let over = relay
        .get(guesses.clone().next().unwrap(), &client('b'))
        .await;
    assert_eq!(over.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        relay.get(&cid, &client('a')).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        relay.new_channel(&client('a')).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn creation_is_503_when_max_channels_are_alive() {
    let relay = Relay::start(ChannelSettings {
        max_channels: 2,
        ..ChannelSettings::default()
    })
    .await;
    let first = relay.create(&client('a')).await;
    relay.create(&client('a')).await;
    let full = relay.new_channel(&client('a')).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_reason(full).await, "server_full");

    // Deleting a channel makes room again.
    relay
        .request(Method::DELETE, &first, Some(&client('a')))
        .send()
        .await
        .unwrap();
    relay.create(&client('a')).await;
}

#[tokio::test]
async fn forwarded_for_is_used_only_when_trusted() {
    let trusted = Relay::start(ChannelSettings {
        trust_forwarded_for: true,
        ..ChannelSettings::default()
    })
    .await;
    let create_from = |relay: &Relay, address: &str| {
        relay
            .request(Method::GET, "new_channel", Some(&client('a')))
            .header("X-Forwarded-For", format!("{address}, 10.0.0.1"))
            .send()
    };
    for _ in 0..10 {
        let response = create_from(&trusted, "203.0.113.1").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let over = create_from(&trusted, "203.0.113.1").await.unwrap();
    assert_eq!(over.status(), StatusCode::FORBIDDEN);
    let other = create_from(&trusted, "203.0.113.2").await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);

    let untrusted = Relay::default().await;
    for n in 0..10 {
        let response = create_from(&untrusted, &format!("203.0.113.{n}"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let over = create_from(&untrusted, "203.0.113.99").await.unwrap();
    assert_eq!(
        over.status(),
        StatusCode::FORBIDDEN,
        "the header was ignored"
    );
}

#[tokio::test]
async fn serving_without_connect_info_fails_loudly() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/easysetup", listener.local_addr().unwrap());
    let app = router(ChannelServer::new(ChannelSettings::default()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{base}/new_channel"))
        .header("X-KeyExchange-Id", client('a'))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
