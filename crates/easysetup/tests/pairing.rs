//! Pairing through a real relay on a socket: success, a wrong code, a third party on the
//! channel, timeouts.

use std::net::SocketAddr;
use std::time::Duration;

use easysetup::channel::{ChannelServer, ChannelSettings};
use easysetup::pairing::{self, PairingError, PairingEvent, Timing};
use serde_json::json;

async fn relay() -> String {
    let server = ChannelServer::new(ChannelSettings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app =
        easysetup::channel::router(server).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn fast() -> Timing {
    Timing {
        poll_interval: Duration::from_millis(20),
        join_timeout: Duration::from_secs(20),
        step_timeout: Duration::from_secs(20),
    }
}

/// Starts an offer and returns the code it shows plus the running task.
async fn start_offer(
    url: &str,
    timing: Timing,
) -> (String, tokio::task::JoinHandle<Result<(), PairingError>>) {
    let (code_tx, code_rx) = tokio::sync::oneshot::channel();
    let url = url.to_owned();
    let task = tokio::spawn(async move {
        let mut code_tx = Some(code_tx);
        let credentials = json!({"kb": "00".repeat(32), "token_server": "http://ts.test"});
        pairing::offer(&url, &credentials, timing, |event| {
            if let PairingEvent::Code(code) = event
                && let Some(tx) = code_tx.take()
            {
                let _ = tx.send(code);
            }
        })
        .await
    });
    (code_rx.await.unwrap(), task)
}

#[tokio::test]
async fn two_devices_pair() {
    let url = relay().await;
    let (code, offer) = start_offer(&url, fast()).await;
    assert_eq!(code.len(), 14, "{code}");
    let mut events = Vec::new();
    let received = pairing::accept(&url, &code, fast(), |e| events.push(e))
        .await
        .unwrap();
    offer.await.unwrap().unwrap();
    assert_eq!(received["token_server"], "http://ts.test");
    assert_eq!(
        events,
        [
            PairingEvent::PeerJoined,
            PairingEvent::KeyConfirmed,
            PairingEvent::Done
        ]
    );
}

#[tokio::test]
async fn a_wrong_code_fails_on_both_sides_and_sends_nothing() {
    let url = relay().await;
    let (code, offer) = start_offer(&url, fast()).await;
    // Change one character of the secret (the first 8), keep the channel.
    let mut chars: Vec<char> = code.chars().collect();
    chars[0] = if chars[0] == 'a' { 'b' } else { 'a' };
    let wrong: String = chars.into_iter().collect();
    let accepted = pairing::accept(&url, &wrong, fast(), |_| {}).await;
    assert!(
        matches!(accepted, Err(PairingError::KeyMismatch)),
        "{accepted:?}"
    );
    let offered = offer.await.unwrap();
    assert!(
        matches!(offered, Err(PairingError::KeyMismatch)),
        "{offered:?}"
    );
}

#[tokio::test]
async fn a_third_party_on_the_channel_closes_it() {
    let url = relay().await;
    let (code, offer) = start_offer(&url, fast()).await;
    let channel = code.replace('-', "")[8..].to_owned();
    // Two strangers read the channel with their own client ids: the second one is a third
    // id on the channel (after the offerer and the first stranger), and the relay deletes it.
    for id in ["ab", "cd"] {
        reqwest::Client::new()
            .get(format!("{url}/easysetup/{channel}"))
            .header("x-keyexchange-id", id.repeat(128))
            .send()
            .await
            .unwrap();
    }
    let accepted = pairing::accept(&url, &code, fast(), |_| {}).await;
    assert!(
        matches!(accepted, Err(PairingError::ChannelGone)),
        "{accepted:?}"
    );
    let offered = offer.await.unwrap();
    assert!(
        offered.is_err(),
        "the offering side must not send the credentials"
    );
}

#[tokio::test]
async fn nobody_joining_times_out() {
    let url = relay().await;
    let timing = Timing {
        join_timeout: Duration::from_millis(300),
        ..fast()
    };
    let (_code, offer) = start_offer(&url, timing).await;
    assert!(matches!(
        offer.await.unwrap(),
        Err(PairingError::Timeout(_))
    ));
}

#[tokio::test]
async fn codes_that_are_not_codes_or_name_no_channel_fail_clearly() {
    let url = relay().await;
    assert!(matches!(
        pairing::accept(&url, "short", fast(), |_| {}).await,
        Err(PairingError::BadCode(_))
    ));
    let missing = pairing::accept(&url, "abcd-efgh-zzzz", fast(), |_| {}).await;
    assert!(
        matches!(missing, Err(PairingError::ChannelGone)),
        "{missing:?}"
    );
}
