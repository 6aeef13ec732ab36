//! Tier 1 and Tier 2 clients against the real stack: provisioning, reading each other's
//! data, the crypto rule, key rotation, wipes and wrong keys.

use axum::http::Method;
use serde_json::{Value, json};
use sync_client::ClientError;
use sync_client::crypto::{self, CryptoError};
use sync_client::keys::KeyBundle;
use sync_client::records::CollectionKeys;
use sync_client::session::Session;
use sync_client::storage::{NodeCredentials, OutgoingBso, StorageClient};
use sync_client::tier::{Tier1Client, Tier2Client};

use crate::assert_err;
use crate::stack::{Stack, collection_ts, raw};

fn bookmark(id: &str, title: &str) -> Value {
    json!({"id": id, "type": "bookmark", "title": title, "bmkUri": format!("https://example.com/{id}")})
}

/// The cleartexts of a whole collection, oldest first.
async fn cleartexts(session: &Session, collection: &str) -> Vec<Value> {
    session
        .get_all(collection)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.cleartext)
        .collect()
}

#[tokio::test]
async fn tier1_provisions_an_empty_server() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    assert!(
        tier1.collections().await.unwrap().is_empty(),
        "a new account starts empty"
    );

    tier1.ensure_ready().await.unwrap();

    let info = tier1.collections().await.unwrap();
    assert_eq!(info.keys().collect::<Vec<_>>(), ["crypto", "meta"]);
    let meta: Value = serde_json::from_str(&raw(&tier1, "meta", "global").await.payload).unwrap();
    assert_eq!(meta["storageVersion"], 5);
    assert_eq!(meta["syncID"].as_str().unwrap().len(), 12);
    for engine in ["bookmarks", "history", "passwords", "tabs"] {
        assert!(
            meta["engines"][engine]["syncID"].is_string(),
            "meta/global lacks {engine}: {meta}"
        );
    }
    // crypto/keys is encrypted with the account's key and holds what the client uses.
    let stored_keys = raw(&tier1, "crypto", "keys").await;
    let keys = CollectionKeys::from_payload(&alice.bundle(), &stored_keys.payload).unwrap();
    assert_eq!(tier1.collection_keys().await, Some(keys.clone()));

    let secret = bookmark("aaaaaaaaaaaa", "a very secret title");
    tier1.put("bookmarks", &secret).await.unwrap();
    let back = tier1
        .get("bookmarks", "aaaaaaaaaaaa")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.cleartext, secret);
    assert_eq!(
        Some(back.modified),
        collection_ts(&tier1, "bookmarks").await
    );

    let stored = raw(&tier1, "bookmarks", "aaaaaaaaaaaa").await;
    let envelope: serde_json::Map<String, Value> = serde_json::from_str(&stored.payload).unwrap();
    assert_eq!(
        envelope.keys().collect::<Vec<_>>(),
        ["IV", "ciphertext", "hmac"]
    );
    assert!(
        !stored.payload.contains("secret"),
        "cleartext on the server: {}",
        stored.payload
    );
    assert_eq!(
        crypto::decrypt_record(&keys.default, "aaaaaaaaaaaa", &stored.payload).unwrap(),
        secret
    );

    // Another Tier 1 device of the same account finds the server ready and changes nothing.
    let (meta_ts, crypto_ts) = (
        collection_ts(&tier1, "meta").await,
        collection_ts(&tier1, "crypto").await,
    );
    let other_device = stack.tier1(&alice);
    other_device.ensure_ready().await.unwrap();
    assert_eq!(other_device.collection_keys().await, Some(keys));
    assert_eq!(collection_ts(&tier1, "meta").await, meta_ts);
    assert_eq!(collection_ts(&tier1, "crypto").await, crypto_ts);
}

#[tokio::test]
async fn tier2_on_an_empty_server_is_not_ready_and_writes_nothing() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier2 = stack.tier2(&alice);

    assert_err!(tier2.ensure_ready().await, ClientError::NotReady(_));
    assert_err!(
        tier2.put("bookmarks", &bookmark("aaaaaaaaaaaa", "t")).await,
        ClientError::NotReady(_)
    );
    assert!(tier2.collections().await.unwrap().is_empty());
    let requests = stack.faults.storage_requests();
    assert!(
        requests.iter().all(|seen| seen.method == Method::GET),
        "{requests:?}"
    );

    // meta/global without crypto/keys is not enough either.
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    tier1.storage().delete_collection("crypto").await.unwrap();
    let before = tier2.collections().await.unwrap();
    assert!(before.contains_key("meta") && !before.contains_key("crypto"));
    assert_err!(tier2.ensure_ready().await, ClientError::NotReady(_));
    assert_eq!(tier2.collections().await.unwrap(), before);
}

#[tokio::test]
async fn tier2_reads_tier1_data_and_writes_its_own_even_to_a_new_collection() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    let (one, two) = (
        bookmark("aaaaaaaaaaaa", "one"),
        bookmark("bbbbbbbbbbbb", "two"),
    );
    tier1.put("bookmarks", &one).await.unwrap();
    tier1.put("bookmarks", &two).await.unwrap();
    let crypto_ts = collection_ts(&tier1, "crypto").await;

    let tier2 = stack.tier2(&alice);
    tier2.ensure_ready().await.unwrap();
    assert_eq!(
        cleartexts(&tier2, "bookmarks").await,
        [one.clone(), two.clone()]
    );

    let three = bookmark("cccccccccccc", "three");
    let note = json!({"id": "nnnnnnnnnnnn", "text": "a collection nobody created before"});
    tier2.put("bookmarks", &three).await.unwrap();
    tier2.put("notes", &note).await.unwrap();

    // The new collection is encrypted with the default bundle of crypto/keys.
    let keys = tier1.collection_keys().await.unwrap();
    let stored = raw(&tier1, "notes", "nnnnnnnnnnnn").await;
    assert_eq!(
        crypto::decrypt_record(&keys.default, "nnnnnnnnnnnn", &stored.payload).unwrap(),
        note
    );
    assert_eq!(cleartexts(&tier1, "notes").await, [note]);
    assert_eq!(cleartexts(&tier1, "bookmarks").await, [one, two, three]);
    assert_eq!(
        collection_ts(&tier1, "crypto").await,
        crypto_ts,
        "Tier 2 changed crypto"
    );
}

#[tokio::test]
async fn tier2_never_writes_crypto() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    let tier2 = stack.tier2(&alice);
    tier2.ensure_ready().await.unwrap();
    let keys_before = raw(&tier1, "crypto", "keys").await;
    let crypto_ts = collection_ts(&tier1, "crypto").await;
    let requests = stack.faults.storage_count();

    let replacement = OutgoingBso {
        id: "keys".into(),
        payload: CollectionKeys::random().to_payload(&alice.bundle()),
        sortindex: None,
        ttl: None,
    };
    let storage = tier2.storage();
    assert_err!(
        storage.put_record("crypto", &replacement, None).await,
        ClientError::CryptoWriteForbidden
    );
    assert_err!(
        storage
            .post_records("crypto", std::slice::from_ref(&replacement), None)
            .await,
        ClientError::CryptoWriteForbidden
    );
    assert_err!(
        storage.delete_records("crypto", &["keys".into()]).await,
        ClientError::CryptoWriteForbidden
    );
    assert_err!(
        storage.delete_collection("crypto").await,
        ClientError::CryptoWriteForbidden
    );
    assert_err!(
        storage.delete_storage().await,
        ClientError::CryptoWriteForbidden
    );
    assert_eq!(
        stack.faults.storage_count(),
        requests,
        "a refused write reached the server"
    );

    let keys_after = raw(&tier1, "crypto", "keys").await;
    assert_eq!(
        (keys_after.payload, keys_after.modified),
        (keys_before.payload, keys_before.modified)
    );
    assert_eq!(collection_ts(&tier1, "crypto").await, crypto_ts);
}

#[tokio::test]
async fn tier1_rotates_keys_and_tier2_follows_without_writing_crypto() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    let records = [
        ("bookmarks", bookmark("aaaaaaaaaaaa", "one")),
        ("bookmarks", bookmark("bbbbbbbbbbbb", "two")),
        (
            "history",
            json!({"id": "hhhhhhhhhhhh", "histUri": "https://example.com/", "visits": []}),
        ),
    ];
    for (collection, cleartext) in &records {
        tier1.put(collection, cleartext).await.unwrap();
    }
    let tier2 = stack.tier2(&alice);
    tier2.ensure_ready().await.unwrap();
    assert_eq!(
        cleartexts(&tier2, "bookmarks").await.len(),
        2,
        "Tier 2 caches the old keys"
    );
    let old_keys = tier1.collection_keys().await.unwrap();
    let mut old_payloads = Vec::new();
    for (collection, cleartext) in &records {
        old_payloads.push(
            raw(&tier1, collection, cleartext["id"].as_str().unwrap())
                .await
                .payload,
        );
    }

    assert_eq!(tier1.rotate_keys().await.unwrap(), records.len());

    let new_keys = tier1.collection_keys().await.unwrap();
    assert_ne!(new_keys.default, old_keys.default);
    assert_eq!(
        CollectionKeys::from_payload(
            &alice.bundle(),
            &raw(&tier1, "crypto", "keys").await.payload
        )
        .unwrap(),
        new_keys
    );
    for ((collection, cleartext), old_payload) in records.iter().zip(&old_payloads) {
        let id = cleartext["id"].as_str().unwrap();
        let stored = raw(&tier1, collection, id).await;
        assert_ne!(
            &stored.payload, old_payload,
            "{collection}/{id} was not re-encrypted"
        );
        assert_eq!(
            crypto::decrypt_record(&old_keys.default, id, &stored.payload),
            Err(CryptoError::HmacMismatch)
        );
        assert_eq!(
            &tier1.get(collection, id).await.unwrap().unwrap().cleartext,
            cleartext
        );
    }

    // Tier 2 still holds the old keys: its next read fails the HMAC, refetches the keys and
    // succeeds, with reads only.
    let crypto_ts = collection_ts(&tier1, "crypto").await;
    let requests = stack.faults.storage_count();
    assert_eq!(
        tier2
            .get("bookmarks", "aaaaaaaaaaaa")
            .await
            .unwrap()
            .unwrap()
            .cleartext,
        records[0].1
    );
    assert_eq!(tier2.collection_keys().await, Some(new_keys.clone()));
    assert_eq!(cleartexts(&tier2, "history").await, [records[2].1.clone()]);
    let seen = &stack.faults.storage_requests()[requests..];
    assert!(
        seen.iter().all(|request| request.method == Method::GET),
        "{seen:?}"
    );
    assert_eq!(collection_ts(&tier1, "crypto").await, crypto_ts);

    // One collection gets its own key; Tier 2 reads it, and writes to it with that key.
    assert_eq!(tier1.set_collection_key("bookmarks").await.unwrap(), 2);
    let keys = tier1.collection_keys().await.unwrap();
    let bookmarks_key = keys
        .collections
        .get("bookmarks")
        .expect("bookmarks has its own key")
        .clone();
    assert_ne!(bookmarks_key, keys.default);
    assert_eq!(keys.default, new_keys.default, "the default key stays");
    let stored = raw(&tier1, "bookmarks", "bbbbbbbbbbbb").await;
    assert_eq!(
        crypto::decrypt_record(&keys.default, "bbbbbbbbbbbb", &stored.payload),
        Err(CryptoError::HmacMismatch)
    );
    assert_eq!(
        crypto::decrypt_record(&bookmarks_key, "bbbbbbbbbbbb", &stored.payload).unwrap(),
        records[1].1
    );

    assert_eq!(
        cleartexts(&tier2, "bookmarks").await,
        [records[0].1.clone(), records[1].1.clone()]
    );
    assert_eq!(cleartexts(&tier2, "history").await, [records[2].1.clone()]);
    let three = bookmark("cccccccccccc", "three");
    tier2.put("bookmarks", &three).await.unwrap();
    let stored = raw(&tier1, "bookmarks", "cccccccccccc").await;
    assert_eq!(
        crypto::decrypt_record(&bookmarks_key, "cccccccccccc", &stored.payload).unwrap(),
        three
    );
}

#[tokio::test]
async fn tier2_waits_after_a_wipe_until_tier1_sets_the_server_up_again() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    tier1
        .put("bookmarks", &bookmark("aaaaaaaaaaaa", "before the wipe"))
        .await
        .unwrap();
    let tier2 = stack.tier2(&alice);
    tier2.ensure_ready().await.unwrap();
    let old_keys = tier2.collection_keys().await.unwrap();

    tier1.storage().delete_storage().await.unwrap();
    let requests = stack.faults.storage_count();
    assert_err!(tier2.ensure_ready().await, ClientError::NotReady(_));
    assert!(
        tier2.collections().await.unwrap().is_empty(),
        "Tier 2 wrote after the wipe"
    );
    let seen = &stack.faults.storage_requests()[requests..];
    assert!(
        seen.iter().all(|request| request.method == Method::GET),
        "{seen:?}"
    );

    tier1.ensure_ready().await.unwrap(); // a fresh start
    let after = bookmark("bbbbbbbbbbbb", "after the wipe");
    tier1.put("bookmarks", &after).await.unwrap();

    tier2.ensure_ready().await.unwrap();
    let keys = tier2.collection_keys().await.unwrap();
    assert_ne!(
        keys.default, old_keys.default,
        "a fresh start makes new keys"
    );
    assert_eq!(Some(keys), tier1.collection_keys().await);
    assert_eq!(cleartexts(&tier2, "bookmarks").await, [after]);
}

#[tokio::test]
async fn a_wrong_key_is_caught_by_the_hmac_and_never_replaces_the_keys() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    // Every client below uses the same node token: same uid, different keys.
    let token = stack.token_client(&alice).fetch().await.unwrap();
    let storage = || StorageClient::new(NodeCredentials::Fixed(token.clone()));
    let right = Tier1Client::new(storage(), alice.bundle());
    right.ensure_ready().await.unwrap();
    let one = bookmark("aaaaaaaaaaaa", "one");
    right.put("bookmarks", &one).await.unwrap();
    let keys_before = raw(&right, "crypto", "keys").await;
    let info_before = right.collections().await.unwrap();

    let wrong_key = KeyBundle::from_kb(&rand::random::<[u8; 32]>());
    let wrong_tier1 = Tier1Client::new(storage(), wrong_key.clone());
    assert_err!(wrong_tier1.ensure_ready().await, ClientError::WrongKey);
    assert_eq!(wrong_tier1.collection_keys().await, None);
    let wrong_tier2 = Tier2Client::new(storage(), wrong_key);
    assert_err!(wrong_tier2.ensure_ready().await, ClientError::NotReady(_));

    let keys_after = raw(&right, "crypto", "keys").await;
    assert_eq!(
        (keys_after.payload, keys_after.modified),
        (keys_before.payload, keys_before.modified)
    );
    assert_eq!(right.collections().await.unwrap(), info_before);

    // A record encrypted with some other bulk key fails its HMAC, even after the keys are
    // fetched again, and is reported, never decrypted into garbage.
    let foreign = crypto::encrypt_record(
        &KeyBundle::random(),
        "zzzzzzzzzzzz",
        &bookmark("zzzzzzzzzzzz", "x"),
    )
    .unwrap();
    let bso = OutgoingBso {
        id: "zzzzzzzzzzzz".into(),
        payload: foreign,
        sortindex: None,
        ttl: None,
    };
    right
        .storage()
        .put_record("bookmarks", &bso, None)
        .await
        .unwrap();
    assert_err!(
        right.get("bookmarks", "zzzzzzzzzzzz").await,
        ClientError::Record { error: CryptoError::HmacMismatch, ref collection, ref id }
            if collection == "bookmarks" && id == "zzzzzzzzzzzz"
    );
    assert_eq!(
        right
            .get("bookmarks", "aaaaaaaaaaaa")
            .await
            .unwrap()
            .unwrap()
            .cleartext,
        one
    );
}
