//! The public Firefox Sync test vectors V1–V10 of `shared/specs/test-vectors.md`, one test
//! each, with the full published values.
//!
//! They live apart from the modules they test because the long base64 strings would bury
//! those modules' own tests. V11 (J-PAKE) is out of scope for this crate. Where the spec
//! marks a value *computed* (not stated by the source), it is still checked: it is the
//! independent recomputation's output.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use hmac::Mac;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::crypto::{CryptoError, EncryptedPayload, decrypt, decrypt_record, encrypt_with_iv};
use crate::keys::{
    KeyBundle, OLDSYNC_INFO, SyncKey, client_state, hmac_sha256, key_id, normalize_username,
    scoped_key_k,
};
use crate::records::CollectionKeys;

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn bundle_hex(enc: &str, hmac: &str) -> KeyBundle {
    KeyBundle {
        enc: unhex(enc),
        hmac: unhex(hmac),
    }
}

fn bundle_b64(enc: &str, hmac: &str) -> KeyBundle {
    KeyBundle::from_base64_pair(enc, hmac).unwrap()
}

/// Checks a bundle against both its base64 and hex spellings.
fn assert_bundle(bundle: &KeyBundle, enc_b64: &str, hmac_b64: &str, enc_hex: &str, hmac_hex: &str) {
    assert_eq!(bundle.to_base64_pair(), [enc_b64, hmac_b64]);
    assert_eq!(hex::encode(bundle.enc), enc_hex);
    assert_eq!(hex::encode(bundle.hmac), hmac_hex);
}

fn payload(ciphertext: &str, iv: &str, hmac: &str) -> EncryptedPayload {
    EncryptedPayload {
        ciphertext: ciphertext.to_owned(),
        iv: iv.to_owned(),
        hmac: hmac.to_owned(),
    }
}

fn payload_str(ciphertext: &str, iv: &str, hmac: &str) -> String {
    serde_json::to_string(&payload(ciphertext, iv, hmac)).unwrap()
}

#[test]
fn v1_fxa_hkdf_oldsync() {
    let ikm = hex::decode("c71aa7cbd8b82a8ff6eda55c39479fd2").unwrap();
    let okm_hex = "36ae05317f08eaa6f12c72633d6f9a1162cbbf9300a6728730db48643af73342a65574d6685dbf65a735912d272ee1ebe98c867428fb54616deae7bb7bc23dcc";

    let (prk, _) = Hkdf::<Sha256>::extract(Some(&[0u8; 32]), &ikm);
    assert_eq!(
        hex::encode(prk),
        "89925e544da1434db1e7c9a59224a7033940c14c9321fb2a14c8ee1c37ae8d80"
    );
    // No salt, an empty salt, 32 and 64 zero bytes are all the same HKDF.
    for salt in [
        None,
        Some(&[][..]),
        Some(&[0u8; 32][..]),
        Some(&[0u8; 64][..]),
    ] {
        let mut okm = [0u8; 64];
        Hkdf::<Sha256>::new(salt, &ikm)
            .expand(OLDSYNC_INFO.as_bytes(), &mut okm)
            .unwrap();
        assert_eq!(hex::encode(okm), okm_hex);
    }

    let bundle = KeyBundle::from_kb(&ikm);
    assert_eq!(
        hex::encode(bundle.enc),
        "36ae05317f08eaa6f12c72633d6f9a1162cbbf9300a6728730db48643af73342"
    );
    assert_eq!(
        hex::encode(bundle.hmac),
        "a65574d6685dbf65a735912d272ee1ebe98c867428fb54616deae7bb7bc23dcc"
    );
    assert_eq!(
        hex::encode(URL_SAFE_NO_PAD.decode(scoped_key_k(&ikm)).unwrap()),
        okm_hex
    );
}

#[test]
fn v2_kb_to_sync_key_bundle() {
    let kb =
        hex::decode("d02d8fe39f28b601159c543f2deeb8f72bdf2043e8279aa08496fbd9ebaea361").unwrap();
    assert_bundle(
        &KeyBundle::from_kb(&kb),
        "rsLwECkgPYeGbYl92e23FskfIbgld9TgeifEaB9ZwTI=",
        "fs75EseCD/VOLodlIGmwNabBjhTYBHFCe7CGIf0t8Tw=",
        "aec2f01029203d87866d897dd9edb716c91f21b82577d4e07a27c4681f59c132",
        "7ecef912c7820ff54e2e87652069b035a6c18e14d80471427bb08621fd2df13c",
    );
}

#[test]
fn v3_client_state() {
    let kb =
        hex::decode("fd5c747806c07ce0b9d69dcfea144663e630b65ec4963596a22f24910d7dd15d").unwrap();
    assert_eq!(client_state(&kb), "6ae94683571c7a7c54dab4700aa3995f");
}

#[test]
fn v3b_scoped_key_kid_and_k() {
    let wrap_kb: [u8; 32] =
        unhex("404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f");
    let unwrap_b_key: [u8; 32] =
        unhex("6ea660be9c89ec355397f89afb282ea0bf21095760c8c5009bbcc894155bbe2a");
    let kb: Vec<u8> = wrap_kb
        .iter()
        .zip(unwrap_b_key)
        .map(|(a, b)| a ^ b)
        .collect();
    assert_eq!(
        hex::encode(&kb),
        "2ee722fdd8ccaa721bdeb2d1b76560efef705b04349d9357c3e592cf4906e075"
    );

    assert_eq!(
        key_id(&kb, 1510726317123),
        "1510726317123-BAik7hEOdpGnPZnPBSdaTg"
    );
    assert_eq!(
        scoped_key_k(&kb),
        "fwM5VZu0Spf5XcFRZYX2zk6MrqZP7zvovCBcvuKwgYMif3hz98FHmIVa3qjKjrW0J244Zj-P5oWaOcQbvypmpw"
    );
    assert_eq!(client_state(&kb), "0408a4ee110e7691a73d99cf05275a4e");
    let bundle = KeyBundle::from_kb(&kb);
    assert_eq!(
        hex::encode(bundle.enc),
        "7f0339559bb44a97f95dc1516585f6ce4e8caea64fef3be8bc205cbee2b08183"
    );
    assert_eq!(
        hex::encode(bundle.hmac),
        "227f7873f7c14798855adea8ca8eb5b4276e38663f8fe6859a39c41bbf2a66a7"
    );
}

#[test]
fn v4_legacy_sync_key_android() {
    let username = "smqvooxj664hmrkrv6bw4r4vkegjhkns";
    let key = SyncKey::parse("gbh7teqqcgyzd65svjgibd7tqy").unwrap();
    assert_eq!(
        hex::encode(key.as_bytes()),
        "304ff9921011b191fbb2aa4c808ff386"
    );
    assert_eq!(key.to_friendly(), "gbh7teqqcgyzd65svjgibd7tqy");
    assert_eq!(normalize_username(username), username);
    assert_bundle(
        &KeyBundle::from_legacy_sync_key(&key, username),
        "069EnS3EtDK4y1tZ1AyKX+U7WEsWRp9bRIKLdW/7aoE=",
        "LF2YCS1QCgSNCf0BCQvQ06SGH8jqJDi9dKj0O+b0fwI=",
        "d3af449d2dc4b432b8cb5b59d40c8a5fe53b584b16469f5b44828b756ffb6a81",
        "2c5d98092d500a048d09fd01090bd0d3a4861fc8ea2438bd74a8f43be6f47f02",
    );
}

#[test]
fn v4b_legacy_sync_key_from_firefox() {
    let username = "c6o7dvmr2c4ud2fyv6woz2u4zi22bcyd";
    // Uses both substitutions: `8` for `l` and `9` for `o`.
    let key = SyncKey::parse("6m8mv8ex2brqnrmsb9fjuvfg7y").unwrap();
    assert_eq!(STANDARD.encode(key.as_bytes()), "8xbKrJfQYwbFkguKmlSm/g==");
    assert_eq!(
        hex::encode(key.as_bytes()),
        "f316caac97d06306c5920b8a9a54a6fe"
    );
    assert_eq!(normalize_username(username), username);
    assert_bundle(
        &KeyBundle::from_legacy_sync_key(&key, username),
        "/8RzbFT396htpZu5rwgIg2WKfyARgm7dLzsF5pwrVz8=",
        "NChGjrqoXYyw8vIYP2334cvmMtsjAMUZNqFwV2LGNkM=",
        "ffc4736c54f7f7a86da59bb9af080883658a7f2011826edd2f3b05e69c2b573f",
        "3428468ebaa85d8cb0f2f2183f6df7e1cbe632db2300c51936a1705762c63643",
    );
}

#[test]
fn v4c_legacy_sync_key_firefox_desktop() {
    let key = SyncKey::parse("q7ynpwq7vsc9m34hankbyi3s3i").unwrap();
    assert_eq!(
        hex::encode(key.as_bytes()),
        "87f0d7da1fac84e66f8703541c2372da"
    );
    let bundle = KeyBundle::from_legacy_sync_key(&key, "st3fan");
    assert_bundle(
        &bundle,
        "FLjAn6hOknKe5pUWCvbgOF+PYhWiXRSQbhdHvaot5CY=",
        "Nw41ZiRdef5gKjrbUTfkJDnNKlcSNRl+BGnX1UGweHU=",
        "14b8c09fa84e92729ee695160af6e0385f8f6215a25d14906e1747bdaa2de426",
        "370e3566245d79fe602a3adb5137e42439cd2a571235197e0469d7d541b07875",
    );

    // The obsolete pre-release values come from swapping HMAC key and message. Show that
    // the swap reproduces them, and that the real derivation does not.
    let obsolete_enc = "3fe2d3743fe03d4f460ce2405ec189e68dfd7e42c97d50fab9bda3761263cc87";
    let obsolete_hmac = "bf05f720423d297e8fd55faee7cdeaf32aa15cfb6e56115268c9c326b999795a";
    let info = b"Sync-AES_256_CBC-HMAC256st3fan";
    let mut swapped = hmac_sha256(&[&info[..], &[0x01]].concat());
    swapped.update(key.as_bytes());
    let swapped_enc = swapped.finalize().into_bytes();
    let mut swapped = hmac_sha256(&[&swapped_enc[..], &info[..], &[0x02]].concat());
    swapped.update(key.as_bytes());
    assert_eq!(hex::encode(swapped_enc), obsolete_enc);
    assert_eq!(hex::encode(swapped.finalize().into_bytes()), obsolete_hmac);
    assert_ne!(hex::encode(bundle.enc), obsolete_enc);
    assert_ne!(hex::encode(bundle.hmac), obsolete_hmac);
}

#[test]
fn v4d_legacy_docs_example_with_email_username() {
    let key = SyncKey::from_bytes(unhex("c71aa7cbd8b82a8ff6eda55c39479fd2"));
    // The raw email goes into the info: no normalisation in this vector.
    assert_bundle(
        &KeyBundle::from_legacy_sync_key(&key, "johndoe@example.com"),
        "jQdlQw6g2dvVPFNsbFxMtjnAkwde8r13zTDPSFE4uQU=",
        "v55IrFCi/MQArk0wpY3GqDp3IMMvWMYP2dAtsW5AYhY=",
        "8d0765430ea0d9dbd53c536c6c5c4cb639c093075ef2bd77cd30cf485138b905",
        "bf9e48ac50a2fcc400ae4d30a58dc6a83a7720c32f58c60fd9d02db16e406216",
    );
}

#[test]
fn v4e_friendly_base32() {
    // (a) the old docs' example, in both directions.
    let bytes: [u8; 16] = unhex("c71aa7cbd8b82a8ff6eda55c39479fd2");
    assert_eq!(
        data_encoding::BASE32.encode(&bytes),
        "Y4NKPS6YXAVI75XNUVODSR472I======"
    );
    let key = SyncKey::from_bytes(bytes);
    assert_eq!(key.to_friendly(), "y4nkps6yxavi75xnuv9dsr472i");
    assert_eq!(key.to_display(), "y-4nkps-6yxav-i75xn-uv9ds-r472i");
    assert_eq!(SyncKey::parse("y4nkps6yxavi75xnuv9dsr472i").unwrap(), key);
    assert_eq!(
        SyncKey::parse("y-4nkps-6yxav-i75xn-uv9ds-r472i").unwrap(),
        key
    );

    // (b) Android's TestBase32.
    let foobar = SyncKey::parse("mzxw6ytb9jrgcztpn5rgc4tcme").unwrap();
    assert_eq!(foobar.as_bytes(), b"foobarbafoobarba");
    assert_eq!(foobar.to_friendly(), "mzxw6ytb9jrgcztpn5rgc4tcme");
    let key = SyncKey::parse("6m8mv8ex2brqnrmsb9fjuvfg7y").unwrap();
    assert_eq!(
        hex::encode(key.as_bytes()),
        "f316caac97d06306c5920b8a9a54a6fe"
    );
    assert_eq!(key.to_friendly(), "6m8mv8ex2brqnrmsb9fjuvfg7y");
    assert_eq!(data_encoding::BASE32.encode(b"foobar"), "MZXW6YTBOI======");
    assert_eq!(
        data_encoding::BASE32.decode(b"MZXW6YTBOI======").unwrap(),
        b"foobar"
    );
    assert_eq!(data_encoding::BASE32.encode(b"fooba"), "MZXW6YTB");
}

#[test]
fn v5_record_encryption_fixed_iv() {
    let bundle = bundle_hex(
        "d3af449d2dc4b432b8cb5b59d40c8a5fe53b584b16469f5b44828b756ffb6a81",
        "2c5d98092d500a048d09fd01090bd0d3a4861fc8ea2438bd74a8f43be6f47f02",
    );
    let iv = unhex("375a12d6de4ef26b735f6fccfbafff2d");
    let encrypted = encrypt_with_iv(&bundle, b"SECRET MESSAGE", iv);
    assert_eq!(encrypted.iv, "N1oS1t5O8mtzX2/M+6//LQ==");
    assert_eq!(encrypted.ciphertext, "wcgqzENt5iXt9/7KPJ3rTA==");
    assert_eq!(
        hex::encode(STANDARD.decode(&encrypted.ciphertext).unwrap()),
        "c1c82acc436de625edf7feca3c9deb4c"
    );
    assert_eq!(
        encrypted.hmac,
        "b5d1479ae2019663d6572b8e8a734e5f06c1602a0cd0becb87ca81501a08fa55"
    );
    assert_eq!(decrypt(&bundle, &encrypted).unwrap(), b"SECRET MESSAGE");

    // The HMAC over the raw ciphertext bytes is the classic mistake; it must not verify.
    let raw_bytes_hmac = payload(
        "wcgqzENt5iXt9/7KPJ3rTA==",
        "N1oS1t5O8mtzX2/M+6//LQ==",
        "c23e1301ed5dc3159f7f463e17dc2143f28d3c5966031ba240b97d58f005ba32",
    );
    assert_eq!(
        decrypt(&bundle, &raw_bytes_hmac),
        Err(CryptoError::HmacMismatch)
    );
}

#[test]
fn v6_full_record_known_answer() {
    let bundle = bundle_b64(
        "9K/wLdXdw+nrTtXo4ZpECyHFNr4d7aYHqeg3KW9+m6Q=",
        "MMntEfutgLTc8FlTLQFms8/xMPmCldqPlq/QQXEjx70=",
    );
    assert_eq!(
        hex::encode(bundle.enc),
        "f4aff02dd5ddc3e9eb4ed5e8e19a440b21c536be1deda607a9e837296f7e9ba4"
    );
    assert_eq!(
        hex::encode(bundle.hmac),
        "30c9ed11fbad80b4dcf059532d0166b3cff130f98295da8f96afd0417123c7bd"
    );
    let iv: [u8; 16] = unhex("197f0bdfb0006f615924ccc8a17957f3");
    let hmac = "b1e6c18ac30deb70236bc0d65a46f7a4dce3b8b0e02cf92182b914e3afa5eebc";
    assert_eq!(
        STANDARD.decode(V6_CLEARTEXT_B64).unwrap(),
        V6_CLEARTEXT.as_bytes()
    );
    assert_eq!(V6_CLEARTEXT.len(), 304);

    let encrypted = encrypt_with_iv(&bundle, V6_CLEARTEXT.as_bytes(), iv);
    assert_eq!(encrypted.iv, "GX8L37AAb2FZJMzIoXlX8w==");
    assert_eq!(encrypted.ciphertext, V6_CIPHERTEXT);
    assert_eq!(encrypted.hmac, hmac);

    let published = payload(V6_CIPHERTEXT, "GX8L37AAb2FZJMzIoXlX8w==", hmac);
    assert_eq!(
        decrypt(&bundle, &published).unwrap(),
        V6_CLEARTEXT.as_bytes()
    );
    let record = decrypt_record(
        &bundle,
        "5qRsgXWRJZXr",
        &serde_json::to_string(&published).unwrap(),
    )
    .unwrap();
    assert_eq!(record["id"], "5qRsgXWRJZXr");
    assert_eq!(record["visits"][0]["date"], 1319149012372425u64);
}

#[test]
fn v7_crypto_keys_under_a_legacy_sync_key() {
    let key = SyncKey::parse("basuxv2426eqj7frhvpcwkavdi").unwrap();
    assert_eq!(
        hex::encode(key.as_bytes()),
        "08254bd75cd78904fcb13d5e2b28151a"
    );
    let sync_bundle = KeyBundle::from_legacy_sync_key(&key, "b6evr62dptbxz7fvebek7btljyu322wp");
    assert_bundle(
        &sync_bundle,
        "xM6Ah4inD92BGP/WM6O959JgIGVJyoKuYM3JI3a51ys=",
        "kKem0PICLc44p0p+iqXM4l4t3ShfJC9o81v7tt22RbY=",
        "c4ce808788a70fdd8118ffd633a3bde7d260206549ca82ae60cdc92376b9d72b",
        "90a7a6d0f2022dce38a74a7e8aa5cce25e2ddd285f242f68f35bfbb6ddb645b6",
    );

    let iv = "Jjb2oVI5uvvFfmZYRY4GaA==";
    let hmac = "0b59731cb1aaedc85f54917b7058f36160826b70050b0d70cd42b0b609b1d717";
    let cleartext = decrypt(&sync_bundle, &payload(V7_CIPHERTEXT, iv, hmac)).unwrap();
    assert_eq!(cleartext, V7_CLEARTEXT.as_bytes());
    assert_eq!(cleartext.len(), 158);

    let keys =
        CollectionKeys::from_payload(&sync_bundle, &payload_str(V7_CIPHERTEXT, iv, hmac)).unwrap();
    assert_eq!(
        keys.default.to_base64_pair(),
        [
            "K8fV6PHG8RgugfHexGesbzTeOs2o12crN/G3bz0Bx1M=",
            "nbceuI6w1RJbBzh+iCJHEs8p4lElsOmayUhx+OztVgM="
        ]
    );
    assert!(keys.collections.is_empty());
}

#[test]
fn v8_history_record_under_v7_bulk_keys() {
    let keys =
        CollectionKeys::from_cleartext(&serde_json::from_str(V7_CLEARTEXT).unwrap()).unwrap();
    let bundle = keys.bundle_for("history");
    assert_eq!(
        bundle,
        &bundle_b64(
            "K8fV6PHG8RgugfHexGesbzTeOs2o12crN/G3bz0Bx1M=",
            "nbceuI6w1RJbBzh+iCJHEs8p4lElsOmayUhx+OztVgM="
        )
    );
    let iv = "GadPajeXhpk75K2YH+Ly4w==";
    let hmac = "71442d946502e3ca475c70a633d3d37f4b4e9313a6d1041d0c0550cd354e7605";
    let cleartext = decrypt(bundle, &payload(V8_CIPHERTEXT, iv, hmac)).unwrap();
    assert_eq!(cleartext, V8_CLEARTEXT.as_bytes());
    assert_eq!(cleartext.len(), 231);

    let record = decrypt_record(
        bundle,
        "hkZYpC-BH4Xi",
        &payload_str(V8_CIPHERTEXT, iv, hmac),
    )
    .unwrap();
    assert_eq!(
        record["title"],
        "How To Edit Your PATH Environment Variables On Mac OS X"
    );
    assert_eq!(
        record["visits"],
        json!([{"date": 1318982074310889u64, "type": 1}])
    );
}

#[test]
fn v9_fxa_end_to_end() {
    let kb =
        hex::decode("85c4f8c1d8e3e2186824c127af786891dd03c6e05b1b45f28f7181211bf2affb").unwrap();
    assert_eq!(
        hex::decode("6964656e746974792e6d6f7a696c6c612e636f6d2f7069636c2f76312f6f6c6473796e63")
            .unwrap(),
        OLDSYNC_INFO.as_bytes()
    );
    assert_eq!(
        hex::encode(URL_SAFE_NO_PAD.decode(scoped_key_k(&kb)).unwrap()),
        "d63eb2610f1e5edc21b37fed22b93b0f9ea379840fb5c3c5eb95991b9b3bfab69cbabfda0762bdf0b27431d81960c8cf5dab7d482901213a5a1b003eb0081ed0"
    );
    let sync_bundle = KeyBundle::from_kb(&kb);
    assert_eq!(
        sync_bundle.to_base64_pair(),
        [
            "1j6yYQ8eXtwhs3/tIrk7D56jeYQPtcPF65WZG5s7+rY=",
            "nLq/2gdivfCydDHYGWDIz12rfUgpASE6WhsAPrAIHtA="
        ]
    );
    assert_eq!(client_state(&kb), "518fef27c6bbc0220aab0f00b1a37308");

    // crypto/keys, the same in both fixture revisions.
    let keys_iv = "FmosM+XBNy81/9oEAgI4Uw==";
    let keys_hmac = "01a816e4577c6cf3f97b66b4382d0a3e7e9178c75a3d38ed9ac8ad6397c2ecce";
    assert_eq!(
        decrypt(
            &sync_bundle,
            &payload(V9_KEYS_CIPHERTEXT, keys_iv, keys_hmac)
        )
        .unwrap(),
        V9_KEYS_CLEARTEXT.as_bytes()
    );
    let keys = CollectionKeys::from_payload(
        &sync_bundle,
        &payload_str(V9_KEYS_CIPHERTEXT, keys_iv, keys_hmac),
    )
    .unwrap();
    let bulk = keys.bundle_for("history");
    assert_eq!(
        bulk.to_base64_pair(),
        [
            "/XKu2GgjfQfrqoIJOQxdBkO++atxe0xO6C3fJaeAbmg=",
            "cVehNzSJd0YDn3JaPz7alyuOuDW1iHmCzlJMZqJdfTc="
        ]
    );

    let revisions = [
        (
            V9A_CIPHERTEXT,
            "kXL3hb11ltD+Jl0YFk+PlQ==",
            "cb727efe7a3f0307921cecbd1a97c03f06a4d75c42026089494d84fcf92dbff9",
            V9A_CLEARTEXT,
            "Object.prototype.__proto__ - JavaScript | MDN",
        ),
        (
            V9B_CIPHERTEXT,
            "pP/NMhj5fwREqes4I9H0tw==",
            "97d16085c1bf347cb7530342ccf85647609be4a8f55d2b8fe409b1756240c06b",
            V9B_CLEARTEXT,
            "Object.prototype.__proto__ \u{20ac} - JavaScript | MDN",
        ),
    ];
    for (ciphertext, iv, hmac, expected, title) in revisions {
        let cleartext = decrypt(bulk, &payload(ciphertext, iv, hmac)).unwrap();
        assert_eq!(cleartext, expected.as_bytes());
        let record =
            decrypt_record(bulk, "_9sCUbahs0ay", &payload_str(ciphertext, iv, hmac)).unwrap();
        assert_eq!(record["id"], "_9sCUbahs0ay");
        assert_eq!(
            record["histUri"],
            "https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Global_Objects/Object/proto"
        );
        assert_eq!(record["title"], title);
        assert_eq!(
            record["visits"],
            json!([{"date": 1439366063808983u64, "type": 1}])
        );
    }
    assert_eq!(V9A_CLEARTEXT.len(), 229);
    // The euro sign is raw UTF-8 (e2 82 ac), not a \u escape.
    assert_eq!(V9B_CLEARTEXT.len(), 233);
    assert!(
        V9B_CLEARTEXT
            .as_bytes()
            .windows(3)
            .any(|w| w == [0xe2, 0x82, 0xac])
    );
}

#[test]
fn v10_bookmark_record_from_a_full_wbo() {
    let bundle = bundle_b64(
        "0A7mU5SZ/tu7ZqwXW1og4qHVHN+zgEi4Xwfwjw+vEJw=",
        "11GN34O9QWXkjR06g8t0gWE1sGgQeWL0qxxWwl8Dmxs=",
    );
    let inner = payload_str(
        V10_CIPHERTEXT,
        "v/0BFgicqYQsd70T39rraA==",
        "59605ed696f6e0e6e062a03510cff742bf6b50d695c042e8372a93f4c2d37dac",
    );
    // The WBO as the server sends it: the payload is a JSON string inside JSON.
    let wbo_text = serde_json::to_string(&json!({
        "id": "0-P9fabp9vJD",
        "sortindex": 131,
        "modified": 1326254123.65,
        "payload": inner,
    }))
    .unwrap();
    let wbo: Value = serde_json::from_str(&wbo_text).unwrap();
    let id = wbo["id"].as_str().unwrap();
    let modified_ms = (wbo["modified"].as_f64().unwrap() * 1000.0).round() as u64;
    assert_eq!(modified_ms, 1326254123650);

    let encrypted: EncryptedPayload =
        serde_json::from_str(wbo["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        decrypt(&bundle, &encrypted).unwrap(),
        V10_CLEARTEXT.as_bytes()
    );

    let record = decrypt_record(&bundle, id, wbo["payload"].as_str().unwrap()).unwrap();
    assert_eq!(record["id"], "0-P9fabp9vJD");
    assert_eq!(record["title"], "Customize Firefox");
    assert!(record["tags"].is_array());
    assert_eq!(record["type"], "bookmark");
    assert_eq!(record["parentid"], "HAZiMFYmygep");
}

// The published ciphertexts and cleartexts, byte for byte as in test-vectors.md.

const V6_CIPHERTEXT: &str = r#"NMsdnRulLwQsVcwxKW9XwaUe7ouJk5Wn80QhbD80l0HEcZGCynh45qIbeYBik0lgcHbKmlIxTJNwU+OeqipN+/j7MqhjKOGIlvbpiPQQLC6/ffF2vbzL0nzMUuSyvaQzyGGkSYM2xUFt06aNivoQTvU2GgGmUK6MvadoY38hhW2LCMkoZcNfgCqJ26lO1O0sEO6zHsk3IVz6vsKiJ2Hq6VCo7hu123wNegmujHWQSGyf8JeudZjKzfi0OFRRvvm4QAKyBWf0MgrW1F8SFDnVfkq8amCB7NhdwhgLWbN+21NitNwWYknoEWe1m6hmGZDgDT32uxzWxCV8QqqrpH/ZggViEr9uMgoy4lYaWqP7G5WKvvechc62aqnsNEYhH26A5QgzmlNyvB+KPFvPsYzxDnSCjOoRSLx7GG86wT59QZw="#;
const V6_CLEARTEXT_B64: &str = r#"eyJpZCI6IjVxUnNnWFdSSlpYciIsImhpc3RVcmkiOiJmaWxlOi8vL1VzZXJzL2phc29uL0xpYnJhcnkvQXBwbGljYXRpb24lMjBTdXBwb3J0L0ZpcmVmb3gvUHJvZmlsZXMva3NnZDd3cGsuTG9jYWxTeW5jU2VydmVyL3dlYXZlL2xvZ3MvIiwidGl0bGUiOiJJbmRleCBvZiBmaWxlOi8vL1VzZXJzL2phc29uL0xpYnJhcnkvQXBwbGljYXRpb24gU3VwcG9ydC9GaXJlZm94L1Byb2ZpbGVzL2tzZ2Q3d3BrLkxvY2FsU3luY1NlcnZlci93ZWF2ZS9sb2dzLyIsInZpc2l0cyI6W3siZGF0ZSI6MTMxOTE0OTAxMjM3MjQyNSwidHlwZSI6MX1dfQ=="#;
const V6_CLEARTEXT: &str = r#"{"id":"5qRsgXWRJZXr","histUri":"file:///Users/jason/Library/Application%20Support/Firefox/Profiles/ksgd7wpk.LocalSyncServer/weave/logs/","title":"Index of file:///Users/jason/Library/Application Support/Firefox/Profiles/ksgd7wpk.LocalSyncServer/weave/logs/","visits":[{"date":1319149012372425,"type":1}]}"#;
const V7_CIPHERTEXT: &str = r#"L1yRyZBkVYKXC1cTpeUqqfmKgCinYV9YntGiG0PfYZSTLQ2s86WPI0VBbQbLZfx7udk6sf6CFE4w5EgiPx0XP3FbjL7r4qIT0vjbAOrLKedZwA3cgiquc+PXMEtml8B4Dfm0crJK0iROlRkb+lePAYkzIiQn5Ba8mSWQEFoLy3zAcfCYXumA7E0FjXYD+TqTG5bqYJY4zvPaB9mn9y3WHw=="#;
const V7_CLEARTEXT: &str = r#"{"default":["K8fV6PHG8RgugfHexGesbzTeOs2o12crN/G3bz0Bx1M=","nbceuI6w1RJbBzh+iCJHEs8p4lElsOmayUhx+OztVgM="],"collections":{},"collection":"crypto","id":"keys"}"#;
const V8_CIPHERTEXT: &str = r#"F4ukf0LM+vhffiKyjaANXeUhfmOPPmQYX1XBoGRh1LiHeKHB5rqjhzd7yAoxqgmFnkIgQFYPSqRAoCxWiAeGULTX+KM4MU5drbNyR/690JBWSyE1vQSiMGwNIbTKnOLGHKkQVYHDpajg5BNFfvHNQ5Jx7uM9uJcmuEjCI6GRMDKyKjhsTqCd99MONkY5rISutaWQ0eEXFgpA9RZPv4jgWlQhe+YrVnpcrTi20bNgKp3IfIeqEelrZ5FJd2WGZOA021d3e7P3Z4qptefH4Q9/hySrWsELWngBaydyn/IjsheZuKra3kJSST/4SvRZ7qXn"#;
const V8_CLEARTEXT: &str = r#"{"id":"hkZYpC-BH4Xi","histUri":"http://hathology.com/2008/06/how-to-edit-your-path-environment-variables-on-mac-os-x/","title":"How To Edit Your PATH Environment Variables On Mac OS X","visits":[{"date":1318982074310889,"type":1}]}"#;
const V9_KEYS_CIPHERTEXT: &str = r#"PP5yNUYwJJoLcsL5o85i6RZfvanYDrwtChDD/LdKTZ8JOLubZ9DyRv3HMetSkbhL3HLvVm/FJ1Z4F2Z6IKQCxAc5dNnLsBIUUxhOHLbT0x9/jfnqZ8fLtlbkogI3ZlNvbc8iUF1aX+boe0Pv43vM0VvzxrnJDYzZ2a6jm9nbzUn0ldV9sv6vuvGHE6dANnRkZ3wA/q0q8UvjdwpzXBixAw=="#;
const V9_KEYS_CLEARTEXT: &str = r#"{"default":["/XKu2GgjfQfrqoIJOQxdBkO++atxe0xO6C3fJaeAbmg=","cVehNzSJd0YDn3JaPz7alyuOuDW1iHmCzlJMZqJdfTc="],"collections":{},"collection":"crypto","id":"keys"}"#;
const V9A_CIPHERTEXT: &str = r#"o/VpkqMj1tlT8t2youwsS2FgvQeonoHxqjGsRTu1+4swfyBq/QsnKfgOOMmDIXZiPC3hOCNUlf/NtQiEe55hzJZEKLBshaLfXotai6KrprwrmykfiXnwn73n+nYNs8BXL5awDHoaJToyFgF4PYokl7mwN7YC2xFiPgwO7Z2u/8r5RfnPV9MoafqvlvUkW+Tqs+QHeHS/iuSA0P2h/j5ynt9v4xDWLVfEMce0KOKHQ5Qj7BmEPAieWP1trkkDmTdVi2euWrs+fuG4C6PgY4A2j2DbNLVIloqpDVkqM2fgh0YOM9L2NC/uiKEb1Ynr2Fos"#;
const V9A_CLEARTEXT: &str = r#"{"id":"_9sCUbahs0ay","histUri":"https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Global_Objects/Object/proto","title":"Object.prototype.__proto__ - JavaScript | MDN","visits":[{"date":1439366063808983,"type":1}]}"#;
const V9B_CIPHERTEXT: &str = r#"o6aTLJdfhW4nz1hhnE2ZkvPb9N9lP6JEez+oufMGWIVAgQFaEMB3r/ObocvRti2dwe7yo2qly9d8aILHuOTgerFZuC5Bu5b0KmvHnVBzLxcPcqF20mFY2iQIApEI82Cu2VfwZuX4tnCLMlxfllEzWvQPWai8e5OKmThdzKdHAmaS+sHBj5FjTe5mxuX4U1c8EJUS3a4fSV5NY0EolUkSuMLw9sXu++7Uiu8OJH/JNWis6getxKcE+J61iaHJO/raiPyYIB/tSi3yrIjb0FqLeG8tXCrrZ9VD/2AWPmJ5/6bpt80dSXgke4qvKePNoCYp"#;
const V9B_CLEARTEXT: &str = r#"{"id":"_9sCUbahs0ay","histUri":"https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Global_Objects/Object/proto","title":"Object.prototype.__proto__ € - JavaScript | MDN","visits":[{"date":1439366063808983,"type":1}]}"#;
const V10_CIPHERTEXT: &str = r#"YJB4dr0vZEIWPirfU2FCJvfzeSLiOP5QWasol2R6ILUxdHsJWuUuvTZVhxYQfTVNou6hVV67jfAvi5Cs+bqhhQsv7icZTiZhPTiTdVGt+uuMotxauVA5OryNGVEZgCCTvT3upzhDFdDbJzVd9O3/gU/b7r/CmAHykX8bTlthlbWeZ8oz6gwHJB5tPRU15nM/m/qW1vyKIw5pw/ZwtAy630AieRehGIGDk+33PWqsfyuT4EUFY9/Ly+8JlnqzxfiBCunIfuXGdLuqTjJOxgrK8mI4wccRFEdFEnmHvh5x7fjl1ID52qumFNQl8zkB75C8XK25alXqwvRR6/AQSP+BgQ=="#;
const V10_CLEARTEXT: &str = r#"{"id":"0-P9fabp9vJD","type":"bookmark","title":"Customize Firefox","parentName":"Mozilla Firefox","bmkUri":"http://www.mozilla.com/en-US/firefox/customize/","tags":[],"keyword":null,"description":null,"loadInSidebar":false,"parentid":"HAZiMFYmygep"}"#;

/// V11: the J-PAKE shared secret K → key bundle (Android `TestJPakeSetup.testKeyDerivation`).
#[test]
fn v11_jpake_secret_to_key_bundle() {
    const K: &str = "811565455b22c857a3e303d1f48ff72ae9ef42d9c3fe3740ce7772cb5bfe23491dd5b7ee5af4828ab9b7d5844866f378b4cf0156810aff0504ef2947402e8e40be1179cf7f37b231bc0db9e4e1bb239c849aa5c12ed2b0b4413017599270aae71ee993dd755ee8c045c5fe03d713894692bf72158d9835ad905442edfd8235e1d0c915053debfc49d8248e4dae16608743aef5dab061f49fd6edd0b93ecdf9feafcbe47eb7e6c3678356d96e9bcd87814b13b9eb1a791fd446d69cb040ec7d7194031267e26f266ee3decbc1a85c5203427361997adf9823fbffe16af9946f1347c5354956356732e436ef5f8307e96554cf69a54e4e8a78552e3f506e9310a1c4438d3ddce44a37482270533e47fc40dc84abfe39c1f95328d0d2540074f6301d4f121c2f0eac49c47a2c430614234ca26dede2a429e2fdb6d282a85174886c3a68c3cf5edc87ccb82af4ae4a9a26fffadc7f4d8ded4ff47b3d2d171f374b230e52e6b45963d3a0a6b20cbe6a440fd4a932279d52a6fd7694b4cbc0cb67ff3c";
    let k = hex::decode(K).unwrap();
    let bundle = KeyBundle::from_jpake_secret(&k);
    assert_eq!(
        bundle.to_base64_pair(),
        [
            "3TXwVlWf6YbuIPcg8m/2U4UXYV4a8RNu6pE2GOVkJJo=".to_owned(),
            "L49fnEPAD31G5uEKy5e4bGZ6IF3G/62qW6Ua/1NvBeQ=".to_owned(),
        ]
    );
    // Leading zero bytes are not part of the minimal encoding.
    let mut padded = vec![0u8, 0u8];
    padded.extend_from_slice(&k);
    assert_eq!(KeyBundle::from_jpake_secret(&padded), bundle);
}
