"""The accounts service against Mozilla's own Python client, PyFxA 0.9 (pytest).

Starts `syncstack serve` on a fresh data directory and drives it with PyFxA as an
off-the-shelf client would: sign-up (open until the first account exists), sign-in, key
fetch, password change keeping kB, OAuth code with PKCE, token verification (locally by
JWKS and by /verify), profile, Sync's token server with the resulting access token, and
destruction of tokens, sessions and the account.

Run by scripts/python-interop, which installs the pinned PyFxA and passes the binary in
SYNCSTACK_ACCOUNTS_TEST_BIN.
"""

import base64
import hashlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time

import pytest
import requests
from fxa import errors
from fxa.core import Client
from fxa.oauth import Client as OAuthClient
from fxa.profile import Client as ProfileClient

FIREFOX = "5882386c6d801776"
OLDSYNC = "https://identity.mozilla.com/apps/oldsync"
EMAIL = "pyfxa@example.org"
PASSWORD = "correct horse battery"
START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def base():
    binary = os.environ["SYNCSTACK_ACCOUNTS_TEST_BIN"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCSTACK_")}
    env["RUST_LOG"] = "info"
    with tempfile.TemporaryDirectory() as data_dir:
        process = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--log-format", "json",
             "--data-dir", data_dir],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )
        lines = queue.Queue()

        def drain():
            for line in process.stderr:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        try:
            yield wait_ready(lines)
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_ready(lines):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            raise RuntimeError("syncstack exited before it was ready")
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if fields.get("message") == "syncstack ready":
            return fields["public_url"].rstrip("/")
    raise RuntimeError("syncstack was not ready in time")


@pytest.fixture(scope="module")
def account(base):
    """The first account, created through the API while sign-up is open; (client, kB)."""
    client = Client(base + "/auth")
    session = client.create_account(EMAIL, PASSWORD, keys=True)
    _, kb = session.fetch_keys()
    assert len(kb) == 32
    return client, kb


def test_sign_up_closes_after_the_first_account(base, account):
    client, _ = account
    with pytest.raises(errors.ClientError) as refused:
        client.create_account("second@example.org", "another password")
    assert refused.value.details["errno"] == 202
    assert refused.value.details["code"] == 403


def test_login_fetches_the_same_kb_every_time(account):
    client, kb = account
    session = client.login(EMAIL, PASSWORD, keys=True)
    assert session.verified
    key_fetch_token, stretchpwd = session._key_fetch_token, session.stretchpwd
    assert session.fetch_keys()[1] == kb
    session.check_session_status()  # raises unless the session is valid and ours
    assert session.get_email_status()["verified"]
    assert client.get_account_status(session.uid)["exists"]
    # A key fetch token is good once.
    with pytest.raises(errors.ClientError) as again:
        client.fetch_keys(key_fetch_token, stretchpwd)
    assert again.value.details["errno"] == 110


def test_wrong_password_and_unknown_account(account):
    client, _ = account
    with pytest.raises(errors.ClientError) as wrong:
        client.login(EMAIL, "wrong password")
    assert wrong.value.details["errno"] == 103
    with pytest.raises(errors.ClientError) as unknown:
        client.login("nobody@example.org", PASSWORD)
    assert unknown.value.details["errno"] == 102


def x_key_id(keys_changed_at, kb):
    digest = hashlib.sha256(kb).digest()[:16]
    return "%d-%s" % (keys_changed_at, base64.urlsafe_b64encode(digest).decode().rstrip("="))


def test_oauth_code_with_pkce_verify_profile_and_sync(base, account):
    client, kb = account
    session = client.login(EMAIL, PASSWORD)
    oauth = OAuthClient(FIREFOX, server_url=base + "/auth")
    token = oauth.authorize_token(session, scope="profile " + OLDSYNC)

    by_jwks = oauth.verify_token(token, scope=OLDSYNC)
    assert by_jwks["user"] == session.uid
    assert by_jwks["client_id"] == FIREFOX
    by_server = OAuthClient(FIREFOX, server_url=base + "/auth", jwks=[], cache=None)
    assert by_server.verify_token(token, scope="profile")["user"] == session.uid

    profile = ProfileClient(base + "/profile").get_profile(token)
    assert profile["uid"] == session.uid
    assert profile["email"] == EMAIL

    # The token server of the same process accepts the token with kB's key id.
    key_data = session.apiclient.post(
        "/account/scoped-key-data", {"client_id": FIREFOX, "scope": OLDSYNC},
        auth=session._auth)
    keys_changed_at = key_data[OLDSYNC]["keyRotationTimestamp"]
    answer = requests.get(
        base + "/1.0/sync/1.5", timeout=30,
        headers={"Authorization": "Bearer " + token,
                 "X-KeyID": x_key_id(keys_changed_at, kb)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["api_endpoint"].startswith(base + "/1.5/")

    oauth.destroy_token(token)
    session.destroy_session()
    with pytest.raises(errors.ClientError) as destroyed:
        session.check_session_status()
    assert destroyed.value.details["errno"] == 110


def test_a_wrong_pkce_verifier_is_refused(base, account):
    client, _ = account
    session = client.login(EMAIL, PASSWORD)
    oauth = OAuthClient(FIREFOX, server_url=base + "/auth")
    challenge, _ = oauth.generate_pkce_challenge()
    _, other_verifier = oauth.generate_pkce_challenge()
    code = oauth.authorize_code(session, OLDSYNC, **challenge)
    with pytest.raises(errors.ClientError) as refused:
        oauth.trade_code(code, **other_verifier)
    assert refused.value.details["errno"] == 117


def test_password_change_keeps_kb_then_destroy(base, account):
    client, kb = account
    session = client.login(EMAIL, PASSWORD)
    changed = client.change_password(EMAIL, PASSWORD, "a new password",
                                     session_token=session.token)
    assert changed["uid"] == session.uid
    with pytest.raises(errors.ClientError):
        client.login(EMAIL, PASSWORD)
    again = client.login(EMAIL, "a new password", keys=True)
    assert again.fetch_keys()[1] == kb

    client.destroy_account(EMAIL, "a new password")
    with pytest.raises(errors.ClientError) as gone:
        client.login(EMAIL, "a new password")
    assert gone.value.details["errno"] == 102
