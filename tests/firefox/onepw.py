"""A minimal onepw client with the standard library only, for the Firefox tests to check the
server's side independently of the browser: sign in, fetch kB, get an oldsync access token
(`fxa-credentials`) and the key id Firefox sends, to check that a password change kept kB.
"""

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.request

NAMESPACE = b"identity.mozilla.com/picl/v1/"
OLDSYNC = "https://identity.mozilla.com/apps/oldsync"
FIREFOX_CLIENT_ID = "5882386c6d801776"


def hkdf(ikm, info, length, salt=b""):
    """HKDF-SHA256 (RFC 5869); an empty salt stands for 32 zero bytes."""
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def stretch(email, password):
    """(authPW, unwrapBKey) for an address and password."""
    quick = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                NAMESPACE + b"quickStretch:" + email.encode(), 1000, 32)
    return hkdf(quick, NAMESPACE + b"authPW", 32), hkdf(quick, NAMESPACE + b"unwrapBkey", 32)


def bearer(token_hex, kind, prefix):
    token_id = hkdf(bytes.fromhex(token_hex), NAMESPACE + kind.encode(), 32)
    return "Bearer %s_%s" % (prefix, token_id.hex())


def _call(method, url, body=None, authorization=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError("%s %s: %s %s" % (method, url, error.code, error.read()[:300]))


def sync_credentials(server, email, password):
    """Signs in by onepw; returns (access token for oldsync, kB hex, keys changed at ms,
    X-KeyID)."""
    api = server + "/auth/v1"
    auth_pw, unwrap_b_key = stretch(email, password)
    login = _call("POST", api + "/account/login?keys=true",
                  {"email": email, "authPW": auth_pw.hex()})
    fetch = bytes.fromhex(login["keyFetchToken"])
    keys = hkdf(fetch, NAMESPACE + b"keyFetchToken", 96)
    bundle_key = keys[64:96]
    bundle = bytes.fromhex(_call("GET", api + "/account/keys", None,
                                 bearer(login["keyFetchToken"], "keyFetchToken", "fxk"))["bundle"])
    km = hkdf(bundle_key, NAMESPACE + b"account/keys", 96)
    ciphertext, mac = bundle[:64], bundle[64:]
    if not hmac.compare_digest(hmac.new(km[:32], ciphertext, hashlib.sha256).digest(), mac):
        raise RuntimeError("key bundle HMAC mismatch")
    plain = bytes(a ^ b for a, b in zip(ciphertext, km[32:]))
    kb = bytes(a ^ b for a, b in zip(plain[32:], unwrap_b_key))
    session = bearer(login["sessionToken"], "sessionToken", "fxs")
    key_data = _call("POST", api + "/account/scoped-key-data",
                     {"client_id": FIREFOX_CLIENT_ID, "scope": OLDSYNC}, session)
    changed_at = key_data[OLDSYNC]["keyRotationTimestamp"]
    token = _call("POST", api + "/oauth/token",
                  {"grant_type": "fxa-credentials", "client_id": FIREFOX_CLIENT_ID,
                   "scope": OLDSYNC, "ttl": 3600}, session)["access_token"]
    fingerprint = base64.urlsafe_b64encode(hashlib.sha256(kb).digest()[:16]).decode().rstrip("=")
    return token, kb.hex(), changed_at, "%d-%s" % (changed_at, fingerprint)
