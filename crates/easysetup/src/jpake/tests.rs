//! Whole-exchange tests of the J-PAKE state machine and every validation path.

use super::*;

const SECRET: &str = "abcdefgh";

fn party(me: &str, peer: &str, secret: &str) -> JPake {
    JPake::new(me, peer, secret).unwrap()
}

/// The secret `x2` a party drew in round 1.
fn x2_of(p: &JPake) -> BigUint {
    match &p.state {
        State::Round1 { x2, .. } => x2.clone(),
        _ => panic!("not in round 1"),
    }
}

fn hex_of(n: &BigUint) -> String {
    to_hex(n)
}

/// A receiver that has sent round 1, and the sender's honest round-1 message.
fn round1_pair() -> (JPake, Round1Message) {
    let mut receiver = party("receiver", "sender", SECRET);
    receiver.round1();
    let mut sender = party("sender", "receiver", SECRET);
    let s1 = sender.round1();
    (receiver, s1)
}

/// Feeds a tampered sender round-1 message to a fresh receiver.
fn round2_err(tamper: impl FnOnce(&mut Round1Message)) -> JPakeError {
    let (mut receiver, mut s1) = round1_pair();
    tamper(&mut s1);
    let err = receiver.round2(&s1).unwrap_err();
    // A failed round 2 ends the run, even for a later honest message.
    let (_, honest) = round1_pair();
    assert!(matches!(
        receiver.round2(&honest),
        Err(JPakeError::WrongState)
    ));
    err
}

/// A receiver that has done round 2, with the sender's honest round-2 message and the
/// receiver's own.
fn round2_pair() -> (JPake, Round2Message, Round2Message) {
    let mut receiver = party("receiver", "sender", SECRET);
    let mut sender = party("sender", "receiver", SECRET);
    let r1 = receiver.round1();
    let s1 = sender.round1();
    let r2 = receiver.round2(&s1).unwrap();
    let s2 = sender.round2(&r1).unwrap();
    (receiver, s2, r2)
}

fn finish_err(tamper: impl FnOnce(&mut Round2Message)) -> JPakeError {
    let (receiver, mut s2, _) = round2_pair();
    tamper(&mut s2);
    receiver.finish(&s2).unwrap_err()
}

/// Runs a whole exchange; returns both bundles.
fn run(receiver_secret: &str, sender_secret: &str) -> (KeyBundle, KeyBundle) {
    let mut receiver = party("receiver", "sender", receiver_secret);
    let mut sender = party("sender", "receiver", sender_secret);
    let r1 = receiver.round1();
    let s1 = sender.round1();
    let s2 = sender.round2(&r1).unwrap();
    let r2 = receiver.round2(&s1).unwrap();
    (receiver.finish(&s2).unwrap(), sender.finish(&r2).unwrap())
}

#[test]
fn honest_parties_derive_hkdf_of_the_same_k() {
    let mut receiver = party("receiver", "sender", SECRET);
    let mut sender = party("sender", "receiver", SECRET);
    let r1 = receiver.round1();
    let s1 = sender.round1();
    let (x2, x4) = (x2_of(&receiver), x2_of(&sender));
    let r2 = receiver.round2(&s1).unwrap();
    let s2 = sender.round2(&r1).unwrap();
    let kr = receiver.finish(&s2).unwrap();
    let ks = sender.finish(&r2).unwrap();
    assert!(kr == ks, "same secret, same bundle");

    // Independently: K = g^((x1+x3)·x2·x4·s) = (gx1·gx3)^(x2·x4·s), fed through D7.
    let g = &*GROUP;
    let s = BigUint::from_bytes_be(SECRET.as_bytes());
    let gx1 = from_hex(&r1.gx1).unwrap();
    let gx3 = from_hex(&s1.gx1).unwrap();
    let k = ((gx1 * gx3) % &g.p).modpow(&((x2 * x4 * s) % &g.q), &g.p);
    assert!(kr == KeyBundle::from_jpake_secret(&k.to_bytes_be()));

    // And the §8.5 confirmation goes through.
    let (ct, iv) = confirmation(&kr);
    assert!(check_confirmation(&ks, &ct, &iv));
}

#[test]
fn different_secrets_give_different_bundles() {
    let (kr, ks) = run("abcdefgh", "abcdefgj");
    assert!(kr != ks);
    let (ct, iv) = confirmation(&kr);
    assert!(
        !check_confirmation(&ks, &ct, &iv),
        "key confirmation catches it"
    );
}

#[test]
fn wire_field_names() {
    let mut receiver = party("receiver", "sender", SECRET);
    let r1 = serde_json::to_value(receiver.round1()).unwrap();
    let mut keys: Vec<_> = r1.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["gx1", "gx2", "zkp_x1", "zkp_x2"]);
    let mut zkp_keys: Vec<_> = r1["zkp_x1"].as_object().unwrap().keys().cloned().collect();
    zkp_keys.sort();
    assert_eq!(zkp_keys, ["b", "gr", "id"]);
    assert_eq!(r1["zkp_x2"]["id"], "receiver");

    let (_, s2, _) = round2_pair();
    let v = serde_json::to_value(&s2).unwrap();
    assert!(v["A"].is_string() && v["zkp_A"]["gr"].is_string());
    assert_eq!(v["zkp_A"]["id"], "sender");
    let back: Round2Message = serde_json::from_value(v).unwrap();
    assert_eq!(back, s2);
}

#[test]
fn we_write_minimal_lowercase_hex() {
    let mut receiver = party("receiver", "sender", SECRET);
    let r1 = receiver.round1();
    for h in [&r1.gx1, &r1.gx2, &r1.zkp_x1.gr, &r1.zkp_x1.b, &r1.zkp_x2.b] {
        assert!(h.len().is_multiple_of(2));
        assert!(!h.starts_with("00"));
        assert!(h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    }
}

#[test]
fn uppercase_hex_is_accepted() {
    let mut receiver = party("receiver", "sender", SECRET);
    let mut sender = party("sender", "receiver", SECRET);
    let r1 = receiver.round1();
    let mut s1 = sender.round1();
    for h in [
        &mut s1.gx1,
        &mut s1.gx2,
        &mut s1.zkp_x1.gr,
        &mut s1.zkp_x1.b,
        &mut s1.zkp_x2.gr,
        &mut s1.zkp_x2.b,
    ] {
        *h = h.to_uppercase();
    }
    let r2 = receiver.round2(&s1).unwrap();
    let mut s2 = sender.round2(&r1).unwrap();
    s2.a = s2.a.to_uppercase();
    s2.zkp_a.gr = s2.zkp_a.gr.to_uppercase();
    s2.zkp_a.b = s2.zkp_a.b.to_uppercase();
    assert!(receiver.finish(&s2).unwrap() == sender.finish(&r2).unwrap());
}

#[test]
fn constructor_checks() {
    assert_eq!(
        JPake::new("a", "a", SECRET).unwrap_err(),
        JPakeError::SameIds
    );
    assert_eq!(
        JPake::new("", "b", SECRET).unwrap_err(),
        JPakeError::InvalidId
    );
    for bad in [
        "",
        "abcdefg",
        "abcdefghi",
        "abcdefg\0",
        "abcd efg",
        "abcdefgé",
    ] {
        assert_eq!(
            JPake::new("a", "b", bad).unwrap_err(),
            JPakeError::InvalidSecret,
            "{bad:?}"
        );
    }
    // s is the big-endian integer of the ASCII bytes.
    assert_eq!(
        party("a", "b", SECRET).s,
        BigUint::from(0x6162636465666768u64)
    );
}

#[test]
fn debug_prints_no_secret() {
    let mut p = party("receiver", "sender", "k7mnpq2r");
    p.round1();
    let x2 = x2_of(&p);
    let dbg = format!("{p:?}");
    assert!(dbg.contains("receiver") && dbg.contains("round 1 sent"));
    assert!(!dbg.contains("k7mnpq2r"));
    assert!(!dbg.contains(&x2.to_string()) && !dbg.contains(&hex_of(&x2)));
}

#[test]
fn state_machine() {
    // round2 before round1: refused, but the party is still usable.
    let mut receiver = party("receiver", "sender", SECRET);
    let mut sender = party("sender", "receiver", SECRET);
    let s1 = sender.round1();
    assert_eq!(receiver.round2(&s1).unwrap_err(), JPakeError::WrongState);
    // round1 twice gives the same message, not fresh secrets.
    let r1 = receiver.round1();
    assert_eq!(receiver.round1(), r1);
    receiver.round2(&s1).unwrap();
    // round2 twice.
    assert_eq!(receiver.round2(&s1).unwrap_err(), JPakeError::WrongState);
    assert_eq!(receiver.round1(), r1);

    // finish before round2.
    let s2 = sender.round2(&r1).unwrap();
    let mut early = party("receiver", "sender", SECRET);
    early.round1();
    assert_eq!(early.finish(&s2).unwrap_err(), JPakeError::WrongState);
    assert!(receiver.finish(&s2).is_ok());
}

#[test]
fn round2_rejects_tampered_proofs() {
    let err = round2_err(|m| {
        let gv = from_hex(&m.zkp_x1.gr).unwrap();
        m.zkp_x1.gr = hex_of(&((gv * &GROUP.g) % &GROUP.p));
    });
    assert_eq!(err, JPakeError::BadProof);

    let err = round2_err(|m| {
        let r = from_hex(&m.zkp_x2.b).unwrap();
        m.zkp_x2.b = hex_of(&((r + 1u32) % &GROUP.q));
    });
    assert_eq!(err, JPakeError::BadProof);

    let err = round2_err(|m| m.zkp_x1.b = hex_of(&GROUP.q));
    assert_eq!(err, JPakeError::OutOfRange);

    // Proofs swapped between the two values.
    let err = round2_err(|m| mem::swap(&mut m.zkp_x1, &mut m.zkp_x2));
    assert_eq!(err, JPakeError::BadProof);
}

#[test]
fn round2_rejects_wrong_signers() {
    let err = round2_err(|m| m.zkp_x2.id = "mallory".into());
    assert_eq!(err, JPakeError::WrongSignerId);

    // Our own round-1 message replayed to us.
    let mut receiver = party("receiver", "sender", SECRET);
    let r1 = receiver.round1();
    assert_eq!(receiver.round2(&r1).unwrap_err(), JPakeError::WrongSignerId);

    // A message made by "mallory", relabelled as the sender's: the hash binds the id.
    let err = round2_err(|m| {
        let mut mallory = party("mallory", "receiver", SECRET);
        *m = mallory.round1();
        m.zkp_x1.id = "sender".into();
        m.zkp_x2.id = "sender".into();
    });
    assert_eq!(err, JPakeError::BadProof);
}

#[test]
fn round2_rejects_bad_elements() {
    let g = &*GROUP;
    for bad in [
        BigUint::ZERO,
        BigUint::from(1u32),
        g.p_minus_1.clone(),
        g.p.clone(),
    ] {
        let err = round2_err(|m| m.gx1 = hex_of(&bad));
        assert_eq!(err, JPakeError::OutOfRange);
    }
    let err = round2_err(|m| m.gx2 = "01".into());
    assert_eq!(err, JPakeError::OutOfRange);
    for outside in [BigUint::from(2u32), &g.p - 2u32] {
        assert_ne!(outside.modpow(&g.q, &g.p), BigUint::from(1u32));
        let err = round2_err(|m| m.gx2 = hex_of(&outside));
        assert_eq!(err, JPakeError::NotInSubgroup);
    }
}

#[test]
fn round2_rejects_repeats() {
    let err = round2_err(|m| {
        m.gx2 = m.gx1.clone();
        m.zkp_x2 = m.zkp_x1.clone();
    });
    assert_eq!(err, JPakeError::RepeatedValue);

    // The peer echoing one of our values (with its own id) is refused before any proof.
    let mut receiver = party("receiver", "sender", SECRET);
    let r1 = receiver.round1();
    let mut sender = party("sender", "receiver", SECRET);
    let mut s1 = sender.round1();
    s1.gx1 = r1.gx1.clone();
    assert_eq!(receiver.round2(&s1).unwrap_err(), JPakeError::RepeatedValue);
}

#[test]
fn round2_rejects_bad_encodings() {
    let err = round2_err(|m| m.gx1 = m.gx1[1..].to_owned());
    assert_eq!(err, JPakeError::BadEncoding);
    let err = round2_err(|m| m.gx2 = format!("0{}", m.gx2));
    assert_eq!(err, JPakeError::BadEncoding);
    let err = round2_err(|m| m.zkp_x1.gr.push_str("zz"));
    assert_eq!(err, JPakeError::BadEncoding);
    let err = round2_err(|m| m.zkp_x2.b.clear());
    assert_eq!(err, JPakeError::BadEncoding);
    // A leading zero byte changes the spelling, not the value: still accepted.
    let (mut receiver, mut s1) = round1_pair();
    s1.gx1 = format!("00{}", s1.gx1);
    assert!(receiver.round2(&s1).is_ok());
}

#[test]
fn finish_rejects_bad_round2() {
    let err = finish_err(|m| {
        let r = from_hex(&m.zkp_a.b).unwrap();
        m.zkp_a.b = hex_of(&((r + 1u32) % &GROUP.q));
    });
    assert_eq!(err, JPakeError::BadProof);
    let err = finish_err(|m| {
        let gv = from_hex(&m.zkp_a.gr).unwrap();
        m.zkp_a.gr = hex_of(&((gv * &GROUP.g) % &GROUP.p));
    });
    assert_eq!(err, JPakeError::BadProof);
    let err = finish_err(|m| m.zkp_a.id = "mallory".into());
    assert_eq!(err, JPakeError::WrongSignerId);
    let err = finish_err(|m| m.a = "01".into());
    assert_eq!(err, JPakeError::OutOfRange);
    let err = finish_err(|m| m.a = "02".into());
    assert_eq!(err, JPakeError::NotInSubgroup);
    let err = finish_err(|m| m.a = "abc".into());
    assert_eq!(err, JPakeError::BadEncoding);

    // Our own round-2 message reflected back.
    let (receiver, _, r2) = round2_pair();
    assert_eq!(receiver.finish(&r2).unwrap_err(), JPakeError::WrongSignerId);

    // A valid round-2 message from another run does not verify over this run's base.
    let (_, other_s2, _) = round2_pair();
    let err = finish_err(|m| *m = other_s2);
    assert_eq!(err, JPakeError::BadProof);
}
