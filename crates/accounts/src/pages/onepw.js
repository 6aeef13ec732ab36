// The browser side of Mozilla's onepw protocol and of Firefox's scoped keys, in WebCrypto:
// stretching the password (PBKDF2 + HKDF) into authPW, which is sent, and unwrapBKey, which
// is not; the token keys; opening the key bundle of /account/keys to rebuild kB; deriving the
// oldsync key Firefox syncs with; and encrypting it to Firefox's ephemeral key as keys_jwe
// (compact JWE, ECDH-ES on P-256 + A256GCM). Nothing here talks to the network.
//
// Written for syncstack from the protocol descriptions (see docs and the accounts spec).
"use strict";

// `var`, so that it is a property of the window (app.js uses it; so does the Firefox test).
var Onepw = (() => {
  const NAMESPACE = "identity.mozilla.com/picl/v1/";
  const OLDSYNC = "https://identity.mozilla.com/apps/oldsync";
  const encoder = new TextEncoder();
  const subtle = globalThis.crypto && globalThis.crypto.subtle;

  function available() {
    return Boolean(subtle) && globalThis.isSecureContext !== false;
  }

  function utf8(text) {
    return encoder.encode(text);
  }

  function toHex(bytes) {
    return Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");
  }

  function fromHex(text) {
    if (typeof text !== "string" || text.length % 2 || /[^0-9a-f]/i.test(text)) {
      throw new Error("not hex");
    }
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) {
      out[i] = parseInt(text.substr(i * 2, 2), 16);
    }
    return out;
  }

  function b64url(bytes) {
    let binary = "";
    for (const b of bytes) {
      binary += String.fromCharCode(b);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromB64url(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(binary, c => c.charCodeAt(0));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function xor(a, b) {
    if (a.length !== b.length) {
      throw new Error("xor of unequal lengths");
    }
    return a.map((byte, i) => byte ^ b[i]);
  }

  async function pbkdf2(password, salt, iterations, length) {
    const key = await subtle.importKey("raw", password, "PBKDF2", false, ["deriveBits"]);
    const bits = await subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, length * 8);
    return new Uint8Array(bits);
  }

  // HKDF-SHA256 with an empty salt unless one is given, as onepw uses it.
  async function hkdf(ikm, info, length, salt = new Uint8Array(0)) {
    const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
    const bits = await subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt, info: utf8(info) }, key, length * 8);
    return new Uint8Array(bits);
  }

  async function sha256(bytes) {
    return new Uint8Array(await subtle.digest("SHA-256", bytes));
  }

  // quickStretchedPW, then authPW (sent to the server) and unwrapBKey (kept here).
  async function stretch(email, password) {
    const quick = await pbkdf2(utf8(password), utf8(NAMESPACE + "quickStretch:" + email), 1000, 32);
    return {
      authPW: await hkdf(quick, NAMESPACE + "authPW", 32),
      unwrapBKey: await hkdf(quick, NAMESPACE + "unwrapBkey", 32),
    };
  }

  // A token's id (its name on the wire), its Hawk key and its bundle key.
  async function tokenKeys(tokenHex, kind) {
    const out = await hkdf(fromHex(tokenHex), NAMESPACE + kind, 96);
    return { id: toHex(out.slice(0, 32)), authKey: out.slice(32, 64), bundleKey: out.slice(64, 96) };
  }

  // Opens /account/keys' bundle (ciphertext of kA || wrapKb, then its HMAC); throws if the
  // HMAC does not match (checked by WebCrypto).
  async function openKeyBundle(bundleKey, bundleHex) {
    const bundle = fromHex(bundleHex);
    if (bundle.length !== 96) {
      throw new Error("the key bundle has the wrong length");
    }
    const keys = await hkdf(bundleKey, NAMESPACE + "account/keys", 96);
    const ciphertext = bundle.slice(0, 64);
    const macKey = await subtle.importKey(
      "raw", keys.slice(0, 32), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    if (!(await subtle.verify("HMAC", macKey, bundle.slice(64), ciphertext))) {
      throw new Error("the key bundle's HMAC does not match");
    }
    const plain = xor(ciphertext, keys.slice(32, 96));
    return { kA: plain.slice(0, 32), wrapKb: plain.slice(32, 64) };
  }

  // The oldsync scoped key as Firefox stores it: 64 bytes from kB (AES key, then HMAC key)
  // and kid "<keyRotationTimestamp ms>-<first 16 bytes of SHA-256(kB), base64url>".
  async function oldsyncKey(kB, keyRotationTimestamp) {
    const k = await hkdf(kB, NAMESPACE + "oldsync", 64);
    const fingerprint = (await sha256(kB)).slice(0, 16);
    return {
      kty: "oct",
      scope: OLDSYNC,
      k: b64url(k),
      kid: `${keyRotationTimestamp}-${b64url(fingerprint)}`,
    };
  }

  // Encrypts `payload` (an object, sent as JSON) to the P-256 public key `keysJwk`
  // (base64url of its JWK, as Firefox's query names it): alg ECDH-ES (direct key
  // agreement, Concat KDF with empty PartyU/PartyV), enc A256GCM, no CEK part.
  async function keysJwe(keysJwk, payload) {
    const peerJwk = JSON.parse(new TextDecoder().decode(fromB64url(keysJwk)));
    if (peerJwk.kty !== "EC" || peerJwk.crv !== "P-256") {
      throw new Error("Firefox's key is not a P-256 key");
    }
    const curve = { name: "ECDH", namedCurve: "P-256" };
    const peer = await subtle.importKey(
      "jwk", { kty: "EC", crv: "P-256", x: peerJwk.x, y: peerJwk.y }, curve, false, []);
    const ephemeral = await subtle.generateKey(curve, true, ["deriveBits"]);
    const shared = new Uint8Array(
      await subtle.deriveBits({ name: "ECDH", public: peer }, ephemeral.privateKey, 256));
    const epk = await subtle.exportKey("jwk", ephemeral.publicKey);
    const header = { alg: "ECDH-ES", enc: "A256GCM", epk: { kty: "EC", crv: "P-256", x: epk.x, y: epk.y } };
    const be32 = n => new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
    const cekBytes = await sha256(concat(
      be32(1), shared, be32(7), utf8("A256GCM"), be32(0), be32(0), be32(256)));
    const cek = await subtle.importKey("raw", cekBytes, "AES-GCM", false, ["encrypt"]);
    const protectedHeader = b64url(utf8(JSON.stringify(header)));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const sealed = new Uint8Array(await subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: utf8(protectedHeader), tagLength: 128 },
      cek, utf8(JSON.stringify(payload))));
    const ciphertext = sealed.slice(0, sealed.length - 16);
    const tag = sealed.slice(sealed.length - 16);
    return `${protectedHeader}..${b64url(iv)}.${b64url(ciphertext)}.${b64url(tag)}`;
  }

  return {
    OLDSYNC, available, toHex, fromHex, b64url, fromB64url, xor,
    stretch, tokenKeys, openKeyBundle, oldsyncKey, keysJwe,
  };
})();
