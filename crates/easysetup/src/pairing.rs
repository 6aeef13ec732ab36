//! The two ends of a pairing: the device that offers its Sync credentials and the device
//! that accepts them, talking through a channel of the relay.
//!
//! The offering device creates the channel and shows the code (8-character secret + channel
//! id); the user types it on the new device. Both run J-PAKE over the channel, so the relay
//! never learns the secret and an attacker who guesses gets one try per pairing. Messages
//! strictly alternate, each written with `If-Match` on the previous one (the first with
//! `If-None-Match: *`), so nothing is overwritten unseen:
//!
//! | # | who | `type` | payload |
//! |---|---|---|---|
//! | 1 | offerer | `sender1` | J-PAKE round 1 |
//! | 2 | accepter | `receiver1` | J-PAKE round 1 |
//! | 3 | offerer | `sender2` | J-PAKE round 2 |
//! | 4 | accepter | `receiver2` | J-PAKE round 2, and key confirmation |
//! | 5 | offerer | `sender3` | the credentials, encrypted and HMACed with the J-PAKE key |
//!
//! The offerer sends the credentials only after the accepter proved it derived the same
//! key (message 4), so a wrong code fails on both sides before anything secret is sent. On
//! any failure a side reports it to the relay, which deletes the channel.

use std::time::{Duration, Instant};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_client::crypto::{self, EncryptedPayload};
use sync_client::keys::KeyBundle;

use crate::jpake::{self, JPake, JPakeError, Round1Message, Round2Message};

/// Signer id of the device that offers credentials.
pub const OFFERER_ID: &str = "sender";
/// Signer id of the device that accepts them.
pub const ACCEPTER_ID: &str = "receiver";
/// Version of the message format (as Firefox's Easy Setup v3).
const VERSION: u32 = 3;

/// How often and how long to wait.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Pause between polls of the channel.
    pub poll_interval: Duration,
    /// How long the offerer waits for the other device to join (a person is typing).
    pub join_timeout: Duration,
    /// How long either side waits for any later message.
    pub step_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll_interval: Duration::from_secs(1),
            join_timeout: Duration::from_secs(300),
            step_timeout: Duration::from_secs(60),
        }
    }
}

/// What a pairing is doing, for progress output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingEvent {
    /// The code to show to the user (offerer).
    Code(String),
    /// The other device joined the channel.
    PeerJoined,
    /// Both sides derived the same key.
    KeyConfirmed,
    /// The credentials went out (offerer) or arrived (accepter).
    Done,
}

/// Why a pairing failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// The relay could not be reached or answered unexpectedly.
    #[error("channel server: {0}")]
    Server(String),
    /// The other device did not answer in time.
    #[error("timed out waiting for the other device ({0})")]
    Timeout(&'static str),
    /// The keys differ: the code was mistyped (or someone else joined the channel).
    #[error("the code did not match on both devices; nothing was sent, try again with a new code")]
    KeyMismatch,
    /// A message was not the one expected next (reordered, replayed or forged).
    #[error("unexpected message on the channel: {0}")]
    WrongMessage(String),
    /// The channel disappeared (the other side gave up, or a third party touched it).
    #[error("the channel was closed (the other device gave up, or a third party used the channel)")]
    ChannelGone,
    /// The code is not a pairing code.
    #[error("not a pairing code: {0}")]
    BadCode(String),
    /// J-PAKE refused a message.
    #[error("key exchange failed: {0}")]
    Exchange(#[from] JPakeError),
}

impl PairingError {
    /// The report code sent to the relay (Easy Setup's error names).
    fn report_code(&self) -> &'static str {
        match self {
            PairingError::Server(_) => "jpake.error.server",
            PairingError::Timeout(_) => "jpake.error.timeout",
            PairingError::KeyMismatch => "jpake.error.keymismatch",
            PairingError::WrongMessage(_) | PairingError::Exchange(_) => "jpake.error.wrongmessage",
            PairingError::ChannelGone => "jpake.error.channel",
            PairingError::BadCode(_) => "jpake.error.invalid",
        }
    }
}

/// One message on the channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// `sender1`, `receiver1`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The format version.
    pub version: u32,
    /// The message's content.
    pub payload: Value,
}

/// Round 2 of the accepter, with its key confirmation.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Round2WithConfirmation {
    #[serde(flatten)]
    round2: Round2Message,
    confirmation: Confirmation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Confirmation {
    ciphertext: String,
    #[serde(rename = "IV")]
    iv: String,
}

/// Why a side gave up.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ErrorPayload {
    code: String,
}

/// A connection to one channel of the relay.
struct Channel {
    http: reqwest::Client,
    base: String,
    client_id: String,
    channel: String,
    etag: Option<String>,
    timing: Timing,
}

fn client_id() -> String {
    let mut bytes = [0u8; 128];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Channel {
    fn new(base: &str, channel: &str, timing: Timing) -> Channel {
        Channel {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("building an HTTP client"),
            base: format!("{}/easysetup", base.trim_end_matches('/')),
            client_id: client_id(),
            channel: channel.to_owned(),
            etag: None,
            timing,
        }
    }

    async fn create(base: &str, timing: Timing) -> Result<Channel, PairingError> {
        let mut channel = Channel::new(base, "", timing);
        let response = channel
            .http
            .get(format!("{}/new_channel", channel.base))
            .header("x-keyexchange-id", &channel.client_id)
            .send()
            .await
            .map_err(|e| PairingError::Server(e.to_string()))?;
        if !response.status().is_success() {
            return Err(PairingError::Server(format!(
                "creating a channel: {}",
                response.status()
            )));
        }
        channel.channel = response
            .json()
            .await
            .map_err(|e| PairingError::Server(e.to_string()))?;
        Ok(channel)
    }

    fn url(&self) -> String {
        format!("{}/{}", self.base, self.channel)
    }

    /// Writes our next message after the one we last saw (or onto the empty channel).
    async fn put(&mut self, kind: &str, payload: Value) -> Result<(), PairingError> {
        let body = ChannelMessage {
            kind: kind.to_owned(),
            version: VERSION,
            payload,
        };
        let mut request = self
            .http
            .put(self.url())
            .header("x-keyexchange-id", &self.client_id)
            .json(&body);
        request = match &self.etag {
            Some(etag) => request.header("if-match", etag),
            None => request.header("if-none-match", "*"),
        };
        let response = request
            .send()
            .await
            .map_err(|e| PairingError::Server(e.to_string()))?;
        match response.status().as_u16() {
            200 | 412 => {
                // 412 carries the ETag of what we sent: a retry of a PUT that already landed.
                self.etag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(())
            }
            404 => Err(PairingError::ChannelGone),
            status => Err(PairingError::Server(format!("PUT answered {status}"))),
        }
    }

    /// Waits for the other side's next message (anything but the body we last saw).
    async fn next(
        &mut self,
        timeout: Duration,
        waiting_for: &'static str,
    ) -> Result<ChannelMessage, PairingError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut request = self
                .http
                .get(self.url())
                .header("x-keyexchange-id", &self.client_id);
            if let Some(etag) = &self.etag {
                request = request.header("if-none-match", etag);
            }
            let response = request
                .send()
                .await
                .map_err(|e| PairingError::Server(e.to_string()))?;
            match response.status().as_u16() {
                304 => {}
                200 => {
                    let etag = response
                        .headers()
                        .get("etag")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    // A fresh channel reads as `{}` without an ETag: nobody wrote yet.
                    if let Some(etag) = etag {
                        let message: ChannelMessage = response.json().await.map_err(|e| {
                            PairingError::WrongMessage(format!("not a channel message: {e}"))
                        })?;
                        self.etag = Some(etag);
                        return Ok(message);
                    }
                }
                404 => return Err(PairingError::ChannelGone),
                status => return Err(PairingError::Server(format!("GET answered {status}"))),
            }
            if Instant::now() >= deadline {
                return Err(PairingError::Timeout(waiting_for));
            }
            tokio::time::sleep(self.timing.poll_interval).await;
        }
    }

    /// Gives up: leaves an error message for the other side when it is still waiting for
    /// us, and reports to the relay. With `close`, the report names the channel and the relay
    /// deletes it; without, the other side reads the error first and closes it (or the
    /// channel expires).
    async fn abort(&mut self, error: &PairingError, close: bool) {
        let code = error.report_code();
        if !matches!(error, PairingError::ChannelGone) {
            let _ = self
                .put(
                    ERROR_KIND,
                    to_value(&ErrorPayload {
                        code: code.to_owned(),
                    }),
                )
                .await;
        }
        let mut request = self
            .http
            .post(format!("{}/report", self.base))
            .header("x-keyexchange-id", &self.client_id)
            .header("x-keyexchange-log", code)
            .body(code);
        if close {
            request = request.header("x-keyexchange-cid", &self.channel);
        }
        let result = request.send().await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "reporting the failed pairing failed");
        }
    }

    async fn delete(&self) {
        let _ = self
            .http
            .delete(self.url())
            .header("x-keyexchange-id", &self.client_id)
            .send()
            .await;
    }
}

/// The message a side leaves on the channel when it gives up, so the other side fails with
/// the real reason instead of a vanished channel.
const ERROR_KIND: &str = "error";

fn expect(message: ChannelMessage, kind: &str) -> Result<Value, PairingError> {
    if message.kind == ERROR_KIND {
        let payload: Option<ErrorPayload> = serde_json::from_value(message.payload).ok();
        let code = payload.map(|p| p.code).unwrap_or_default();
        return Err(match code.as_str() {
            "jpake.error.keymismatch" => PairingError::KeyMismatch,
            other => PairingError::WrongMessage(format!("the other device gave up ({other})")),
        });
    }
    if message.kind != kind || message.version != VERSION {
        return Err(PairingError::WrongMessage(format!(
            "expected {kind} v{VERSION}, got {} v{}",
            message.kind, message.version
        )));
    }
    Ok(message.payload)
}

fn parse<T: serde::de::DeserializeOwned>(payload: Value, what: &str) -> Result<T, PairingError> {
    serde_json::from_value(payload).map_err(|e| PairingError::WrongMessage(format!("{what}: {e}")))
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("protocol messages serialize")
}

/// Offers `credentials` (any JSON) to a new device: creates a channel on the relay at
/// `server`, announces the code through `progress`, and sends the credentials once the
/// other device proved it knows the code.
pub async fn offer(
    server: &str,
    credentials: &Value,
    timing: Timing,
    mut progress: impl FnMut(PairingEvent),
) -> Result<(), PairingError> {
    let mut channel = Channel::create(server, timing).await?;
    let secret = jpake::random_secret();
    let mut exchange = JPake::new(OFFERER_ID, ACCEPTER_ID, &secret)?;
    // The first message is on the channel before anyone can see the code, so the other
    // device never polls an empty channel (each such read counts against the relay's limit).
    channel.put("sender1", to_value(&exchange.round1())).await?;
    progress(PairingEvent::Code(jpake::format_code(
        &secret,
        &channel.channel,
    )));
    let result = offer_on(&mut channel, exchange, credentials, &mut progress).await;
    if let Err(error) = &result {
        // On a key mismatch the other device is still waiting: let it read why, and close.
        let close = !matches!(error, PairingError::KeyMismatch);
        channel.abort(error, close).await;
    }
    result
}

async fn offer_on(
    channel: &mut Channel,
    mut exchange: JPake,
    credentials: &Value,
    progress: &mut impl FnMut(PairingEvent),
) -> Result<(), PairingError> {
    let timing = channel.timing;
    let peer1: Round1Message = parse(
        expect(
            channel
                .next(timing.join_timeout, "the other device to join")
                .await?,
            "receiver1",
        )?,
        "receiver1",
    )?;
    progress(PairingEvent::PeerJoined);
    let round2 = exchange.round2(&peer1)?;
    channel.put("sender2", to_value(&round2)).await?;
    let peer2: Round2WithConfirmation = parse(
        expect(
            channel.next(timing.step_timeout, "round 2").await?,
            "receiver2",
        )?,
        "receiver2",
    )?;
    // A wrong code breaks no proof: both sides finish with different keys, which the
    // confirmation below reveals. A bad proof means a tampered or forged message.
    let key = exchange.finish(&peer2.round2)?;
    if !jpake::check_confirmation(&key, &peer2.confirmation.ciphertext, &peer2.confirmation.iv) {
        return Err(PairingError::KeyMismatch);
    }
    progress(PairingEvent::KeyConfirmed);
    let cleartext = serde_json::to_vec(credentials).expect("JSON serializes");
    channel
        .put("sender3", to_value(&crypto::encrypt(&key, &cleartext)))
        .await?;
    progress(PairingEvent::Done);
    Ok(())
}

/// Accepts credentials offered under `code` through the relay at `server`.
pub async fn accept(
    server: &str,
    code: &str,
    timing: Timing,
    mut progress: impl FnMut(PairingEvent),
) -> Result<Value, PairingError> {
    let (secret, channel_id) =
        jpake::split_code(code).map_err(|e| PairingError::BadCode(e.to_string()))?;
    let mut channel = Channel::new(server, &channel_id, timing);
    let result = accept_on(&mut channel, &secret, &mut progress).await;
    match &result {
        Ok(_) => channel.delete().await,
        Err(error) => channel.abort(error, true).await,
    }
    result
}

async fn accept_on(
    channel: &mut Channel,
    secret: &str,
    progress: &mut impl FnMut(PairingEvent),
) -> Result<Value, PairingError> {
    let timing = channel.timing;
    let mut exchange = JPake::new(ACCEPTER_ID, OFFERER_ID, secret)?;
    let peer1: Round1Message = parse(
        expect(
            channel
                .next(timing.step_timeout, "the offering device")
                .await?,
            "sender1",
        )?,
        "sender1",
    )?;
    progress(PairingEvent::PeerJoined);
    channel
        .put("receiver1", to_value(&exchange.round1()))
        .await?;
    let round2 = exchange.round2(&peer1)?;
    let peer2: Round2Message = parse(
        expect(
            channel.next(timing.step_timeout, "round 2").await?,
            "sender2",
        )?,
        "sender2",
    )?;
    let key: KeyBundle = exchange.finish(&peer2)?;
    let (ciphertext, iv) = jpake::confirmation(&key);
    let message = Round2WithConfirmation {
        round2,
        confirmation: Confirmation { ciphertext, iv },
    };
    channel.put("receiver2", to_value(&message)).await?;
    let sealed: EncryptedPayload = parse(
        expect(
            channel.next(timing.step_timeout, "the credentials").await?,
            "sender3",
        )?,
        "sender3",
    )?;
    progress(PairingEvent::KeyConfirmed);
    let cleartext = crypto::decrypt(&key, &sealed).map_err(|_| PairingError::KeyMismatch)?;
    let credentials = serde_json::from_slice(&cleartext)
        .map_err(|e| PairingError::WrongMessage(format!("credentials are not JSON: {e}")))?;
    progress(PairingEvent::Done);
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: &str, version: u32, payload: Value) -> ChannelMessage {
        ChannelMessage {
            kind: kind.into(),
            version,
            payload,
        }
    }

    /// A replayed or reordered message has the wrong type for the step it arrives at, and is
    /// refused before its content is looked at.
    #[test]
    fn only_the_expected_next_message_is_accepted() {
        assert!(expect(message("sender2", VERSION, Value::Null), "sender2").is_ok());
        for (kind, version) in [("sender1", VERSION), ("receiver2", VERSION), ("sender2", 2)] {
            let refused = expect(message(kind, version, Value::Null), "sender2");
            assert!(
                matches!(refused, Err(PairingError::WrongMessage(_))),
                "{kind} v{version}"
            );
        }
    }

    #[test]
    fn the_other_sides_error_is_reported_as_its_reason() {
        let mismatch = message(
            ERROR_KIND,
            VERSION,
            to_value(&ErrorPayload {
                code: "jpake.error.keymismatch".into(),
            }),
        );
        assert!(matches!(
            expect(mismatch, "sender3"),
            Err(PairingError::KeyMismatch)
        ));
        let other = message(
            ERROR_KIND,
            VERSION,
            to_value(&ErrorPayload {
                code: "jpake.error.timeout".into(),
            }),
        );
        assert!(matches!(
            expect(other, "sender3"),
            Err(PairingError::WrongMessage(_))
        ));
    }

    #[test]
    fn client_ids_are_256_hex_characters() {
        let id = client_id();
        assert_eq!(id.len(), 256);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, client_id());
    }
}
