//! J-PAKE, exactly as Firefox Sync's Easy Setup ran it (format-and-pairing §8.3–§8.5).
//!
//! # Why J-PAKE
//!
//! Easy Setup moves Sync credentials between two devices through an untrusted relay, and
//! the only thing the two users share is an 8-character code (40 bits). Encrypting under a
//! key hashed from the code would let anyone who reads the relay brute-force it offline in
//! moments. J-PAKE (Hao and Ryan's "password-authenticated key exchange by juggling") is a
//! balanced PAKE: an eavesdropper learns nothing that lets them test guesses, and an active
//! attacker gets one guess per run, which the 5-minute channel lifetime and the
//! key-confirmation step turn into a failed pairing rather than a leak.
//!
//! # The protocol
//!
//! Each party holds the secret `s` (the 8 ASCII bytes of the code's secret read as a
//! big-endian integer) and works in Mozilla's 3072-bit Schnorr group, with
//! generator `g` and prime order `q`. Writing our values as `x1, x2` and the peer's as
//! `x3, x4`:
//!
//! 1. [`JPake::round1`]: pick `x1 ∈ [0, q)`, `x2 ∈ [1, q)`; publish `gx1 = g^x1`,
//!    `gx2 = g^x2`, each with a Schnorr proof of knowledge signed with our id (§8.4).
//! 2. [`JPake::round2`]: check the peer's `gx3, gx4` and their proofs, then publish
//!    `A = (gx1·gx3·gx4)^(x2·s)` with a proof over that base.
//! 3. [`JPake::finish`]: check the peer's `B` and its proof over `gx1·gx2·gx3`, then
//!    `K = (B · gx4^(−x2·s))^x2 = g^((x1+x3)·x2·x4·s)`, the same on both sides only if both
//!    used the same `s`. The key bundle is HKDF-SHA256 of `K`'s minimal big-endian bytes
//!    ([`KeyBundle::from_jpake_secret`], derivation D7).
//!
//! A wrong code is *not* detected here: both sides just derive different keys. The
//! receiver proves its key with [`confirmation`], the sender checks it with
//! [`check_confirmation`], and only then are credentials sent.
//!
//! # What is checked, and why
//!
//! Every value received is validated before it is used: hex that is empty, odd-length or
//! not hex is refused; each group element must satisfy `1 < x < p − 1` and `x^q ≡ 1`
//! (so it lies in the order-`q` subgroup and cannot leak exponent bits through a small
//! subgroup); each proof must be signed by the expected peer id, never our own (replaying
//! our own messages back at us fails there), and must verify; `gx3 ≠ gx4`. Beyond §8.4,
//! the peer's `gx3`/`gx4` may not equal our `gx1`/`gx2`, nor its `B` our `A` (honest
//! peers collide with probability about 2^-256; this only closes reflection tricks
//! earlier, before any proof is checked). Any such failure leaves the party permanently
//! failed: a run that saw a bad message is aborted, as Firefox aborts it, and is never
//! resumed with a different message.
//!
//! The state machine makes the order of calls unbypassable: `round2` needs `round1` to
//! have run and works once; `finish` consumes the party. Misuse returns
//! [`JPakeError::WrongState`] without disturbing the state. `round1` is idempotent: a
//! second call returns the same message rather than drawing new secrets.
//!
//! # Limitations
//!
//! `num-bigint` arithmetic is not constant time, and its buffers are not zeroed on drop.
//! Secret exponents live for the few seconds of one pairing and never leave the process;
//! the `Debug` impl of [`JPake`] prints no secret.

use std::fmt;
use std::mem;

use num_bigint::BigUint;
use serde::{Deserialize, Serialize};
use sync_client::keys::KeyBundle;

mod code;
mod confirm;
mod group;
mod zkp;

pub use code::{SECRET_ALPHABET, SECRET_LEN, format_code, random_secret, split_code};
pub use confirm::{CONFIRMATION_PLAINTEXT, check_confirmation, confirmation};

use group::{GROUP, from_hex, to_hex};

/// A Schnorr proof as it travels: `{"gr": …, "b": …, "id": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zkp {
    /// Hex of the commitment `gv = base^v`.
    pub gr: String,
    /// Hex of the response `r = (v − x·h) mod q`.
    pub b: String,
    /// The signer id (`"sender"` or `"receiver"` in Easy Setup).
    pub id: String,
}

/// The payload of `receiver1` / `sender1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round1Message {
    /// Hex of `g^x1`.
    pub gx1: String,
    /// Hex of `g^x2`.
    pub gx2: String,
    /// Proof of knowledge of `x1`.
    pub zkp_x1: Zkp,
    /// Proof of knowledge of `x2`.
    pub zkp_x2: Zkp,
}

/// The payload of `receiver2` / `sender2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round2Message {
    /// Hex of `A = (gx1·gx3·gx4)^(x2·s)`.
    #[serde(rename = "A")]
    pub a: String,
    /// Proof of knowledge of `x2·s` over the base `gx1·gx3·gx4`.
    #[serde(rename = "zkp_A")]
    pub zkp_a: Zkp,
}

/// Why a J-PAKE step failed. No variant carries secret material or peer-chosen text.
///
/// Only [`JPakeError::WrongState`] leaves a party usable; every error about a peer message
/// ends the run. None of them means "the peer typed a different code": that shows up only
/// as a failed [`check_confirmation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JPakeError {
    /// The secret is not 8 printable ASCII characters, or its integer is not in `[1, q−1]`.
    #[error("the secret must be 8 printable ASCII characters")]
    InvalidSecret,
    /// A signer id is empty or longer than 65535 bytes.
    #[error("signer ids must be 1 to 65535 bytes")]
    InvalidId,
    /// Our id and the peer's id are equal, which would let proofs be reflected.
    #[error("own and peer signer ids must differ")]
    SameIds,
    /// A pairing code is too short or has a character outside [`SECRET_ALPHABET`].
    #[error("not a valid pairing code")]
    InvalidCode,
    /// A wire integer is empty, of odd length or not hex.
    #[error("a J-PAKE value is not an even-length hex integer")]
    BadEncoding,
    /// A value is outside its allowed range: a group element not in `(1, p−1)`, or a
    /// proof response `b` not below `q`.
    #[error("a J-PAKE value is out of range")]
    OutOfRange,
    /// A group element is not in the order-`q` subgroup.
    #[error("a J-PAKE value is not in the prime-order subgroup")]
    NotInSubgroup,
    /// A proof is signed by someone other than the expected peer (possibly by us: a
    /// reflected message).
    #[error("a J-PAKE proof is not signed by the expected peer")]
    WrongSignerId,
    /// A proof of knowledge does not verify: the message was altered or forged.
    #[error("a J-PAKE proof of knowledge does not verify")]
    BadProof,
    /// The peer's two round-1 values are equal, or one repeats ours.
    #[error("the peer repeated a J-PAKE value")]
    RepeatedValue,
    /// A step was called out of order, twice, or after a failure.
    #[error("J-PAKE step called out of order")]
    WrongState,
}

/// Where a party is in the exchange, holding only the secrets the next step needs.
enum State {
    /// Nothing sent yet.
    Start,
    /// Round 1 sent. `x1` was only needed for its proof and is already gone.
    Round1 {
        x2: BigUint,
        gx1: BigUint,
        gx2: BigUint,
    },
    /// Round 2 sent.
    Round2 {
        x2: BigUint,
        x2s: BigUint,
        gx1: BigUint,
        gx2: BigUint,
        gx3: BigUint,
        gx4: BigUint,
        a: BigUint,
    },
    /// A peer message failed validation; the run is over.
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Start => "start",
            State::Round1 { .. } => "round 1 sent",
            State::Round2 { .. } => "round 2 sent",
            State::Failed => "failed",
        }
    }
}

/// One party of a J-PAKE exchange.
pub struct JPake {
    my_id: String,
    peer_id: String,
    s: BigUint,
    round1: Option<Round1Message>,
    state: State,
}

impl fmt::Debug for JPake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JPake")
            .field("my_id", &self.my_id)
            .field("peer_id", &self.peer_id)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl JPake {
    /// A party with signer id `my_id` (Easy Setup: `"receiver"` or `"sender"`) talking to
    /// `peer_id`, sharing `secret`: the 8 characters of the code's secret, used as given
    /// (normalise typed codes with [`split_code`] first).
    pub fn new(my_id: &str, peer_id: &str, secret: &str) -> Result<Self, JPakeError> {
        for id in [my_id, peer_id] {
            if id.is_empty() || id.len() > usize::from(u16::MAX) {
                return Err(JPakeError::InvalidId);
            }
        }
        if my_id == peer_id {
            return Err(JPakeError::SameIds);
        }
        if secret.len() != SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(JPakeError::InvalidSecret);
        }
        let s = BigUint::from_bytes_be(secret.as_bytes());
        if s == BigUint::ZERO || s >= GROUP.q {
            return Err(JPakeError::InvalidSecret);
        }
        Ok(JPake {
            my_id: my_id.to_owned(),
            peer_id: peer_id.to_owned(),
            s,
            round1: None,
            state: State::Start,
        })
    }

    /// Round 1: `gx1`, `gx2` and their proofs. The first call draws the secrets; later
    /// calls return the same message.
    pub fn round1(&mut self) -> Round1Message {
        if let Some(msg) = &self.round1 {
            return msg.clone();
        }
        let group = &*GROUP;
        let x1 = group.random_scalar();
        let x2 = group.random_nonzero_scalar();
        let gx1 = group.g.modpow(&x1, &group.p);
        let gx2 = group.g.modpow(&x2, &group.p);
        let msg = Round1Message {
            gx1: to_hex(&gx1),
            gx2: to_hex(&gx2),
            zkp_x1: zkp::prove(&group.g, &x1, &gx1, &self.my_id),
            zkp_x2: zkp::prove(&group.g, &x2, &gx2, &self.my_id),
        };
        self.round1 = Some(msg.clone());
        self.state = State::Round1 { x2, gx1, gx2 };
        msg
    }

    /// Round 2: validates the peer's round-1 message and returns `A` with its proof.
    ///
    /// Allowed once, after [`JPake::round1`]. A validation error ends the run.
    pub fn round2(&mut self, peer: &Round1Message) -> Result<Round2Message, JPakeError> {
        let (x2, gx1, gx2) = match mem::replace(&mut self.state, State::Failed) {
            State::Round1 { x2, gx1, gx2 } => (x2, gx1, gx2),
            other => {
                self.state = other;
                return Err(JPakeError::WrongState);
            }
        };
        // From here on, any early return leaves the party `Failed`.
        let group = &*GROUP;
        let gx3 = from_hex(&peer.gx1)?;
        let gx4 = from_hex(&peer.gx2)?;
        let proof3 = zkp::parse(&peer.zkp_x1)?;
        let proof4 = zkp::parse(&peer.zkp_x2)?;
        group.check_element(&gx3)?;
        group.check_element(&gx4)?;
        proof3.check_signer(&self.peer_id, &self.my_id)?;
        proof4.check_signer(&self.peer_id, &self.my_id)?;
        if gx3 == gx4 || [&gx3, &gx4].iter().any(|v| **v == gx1 || **v == gx2) {
            return Err(JPakeError::RepeatedValue);
        }
        proof3.verify(&group.g, &gx3)?;
        proof4.verify(&group.g, &gx4)?;

        let base = (&gx1 * &gx3 * &gx4) % &group.p;
        let x2s = (&x2 * &self.s) % &group.q;
        let a = base.modpow(&x2s, &group.p);
        let msg = Round2Message {
            a: to_hex(&a),
            zkp_a: zkp::prove(&base, &x2s, &a, &self.my_id),
        };
        self.state = State::Round2 {
            x2,
            x2s,
            gx1,
            gx2,
            gx3,
            gx4,
            a,
        };
        Ok(msg)
    }

    /// Final step: validates the peer's round-2 message and derives the key bundle.
    ///
    /// Allowed after [`JPake::round2`]; consumes the party either way. Success does not
    /// mean the peer used the same code: confirm the key ([`confirmation`]) before use.
    pub fn finish(self, peer: &Round2Message) -> Result<KeyBundle, JPakeError> {
        let State::Round2 {
            x2,
            x2s,
            gx1,
            gx2,
            gx3,
            gx4,
            a,
        } = self.state
        else {
            return Err(JPakeError::WrongState);
        };
        let group = &*GROUP;
        let b = from_hex(&peer.a)?;
        let proof = zkp::parse(&peer.zkp_a)?;
        group.check_element(&b)?;
        proof.check_signer(&self.peer_id, &self.my_id)?;
        if b == a {
            return Err(JPakeError::RepeatedValue);
        }
        let base = (&gx1 * &gx2 * &gx3) % &group.p;
        proof.verify(&base, &b)?;

        let neg_x2s = (&group.q - &x2s) % &group.q;
        let k = ((&b * gx4.modpow(&neg_x2s, &group.p)) % &group.p).modpow(&x2, &group.p);
        Ok(KeyBundle::from_jpake_secret(&group::minimal_bytes(&k)))
    }
}

#[cfg(test)]
mod tests;
