#!/usr/bin/env python3
"""Interoperability checks against Mozilla's own Python client libraries.

Starts `syncstack serve` and talks to it with tokens made and read by `tokenlib` and
requests signed by `hawkauthlib` (2.0.0, the version Mozilla's integration tests use),
sent with `requests`. Each check prints one line; the last line is `N passed, M failed`.

Usage: interop.py PATH-TO-SYNCSTACK-BINARY
(run by scripts/python-interop, which sets up the virtualenv with the pinned libraries).
"""

import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import hawkauthlib
import requests
import tokenlib

READY_MESSAGE = "syncstack storage node ready"
START_TIMEOUT_S = 60
EXIT_TIMEOUT_S = 30
HTTP_TIMEOUT_S = 30
TIMESTAMP_BODY = re.compile(r"^\d+\.\d{2}$")


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def child_env(secret):
    """The environment for the binary: ours, less every SYNCSTACK_* variable (the binary
    reads them all as settings, and refuses unknown ones such as SYNCSTACK_BIN), plus the
    master secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCSTACK_")}
    env["SYNCSTACK_MASTER_SECRET"] = secret
    return env


class HawkAuth(requests.auth.AuthBase):
    """Signs each prepared request with hawkauthlib, as Mozilla's test clients do."""

    def __init__(self, token_id, key):
        self.token_id = token_id
        self.key = key

    def __call__(self, request):
        hawkauthlib.sign_request(request, self.token_id, self.key)
        return request


class Server:
    """A `syncstack serve` child process, with its stderr drained into `log`."""

    def __init__(self, binary, data_dir, secret):
        env = child_env(secret)
        env["RUST_LOG"] = "info"
        self.log = []
        self.process = subprocess.Popen(
            [
                binary, "serve",
                "--listen", "127.0.0.1:0",
                "--log-format", "json",
                "--data-dir", data_dir,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.url = None

    def wait_ready(self):
        self.url = self._wait_ready()

    def _drain(self):
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError("no ready line within %d s" % START_TIMEOUT_S)
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("the server exited before it was ready")
            try:
                event = json.loads(line)
            except ValueError:
                continue
            fields = event.get("fields") if isinstance(event, dict) else None
            if isinstance(fields, dict) and fields.get("message") == READY_MESSAGE:
                return fields["public_url"].rstrip("/")

    def terminate(self):
        """SIGTERM and wait; returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=EXIT_TIMEOUT_S)
        self._reader.join(timeout=5)
        return code

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Interop:
    def __init__(self, binary):
        self.binary = binary
        self.passed = 0
        self.failed = 0
        self.secret = secrets.token_hex(32)
        self.data_dir = tempfile.mkdtemp(prefix="syncstack-interop-")
        self.server = None
        self.http = requests.Session()
        # Never route 127.0.0.1 through a proxy from the environment.
        self.http.trust_env = False

    # -- plumbing ---------------------------------------------------------------------

    def check(self, name, func):
        try:
            func()
        except Exception as error:  # any exception is a failed check, never a crash
            self.failed += 1
            if isinstance(error, CheckFailed):
                reason = str(error)
            else:
                reason = "".join(
                    traceback.format_exception_only(type(error), error)
                ).strip()
            print("FAIL %s: %s" % (name, reason), flush=True)
            return False
        self.passed += 1
        print("PASS %s" % name, flush=True)
        return True

    def python_token(self, uid, node=None, secret=None, **extra):
        """A token as Mozilla's Python token server makes it, with its derived key."""
        secret = self.secret if secret is None else secret
        data = {
            "uid": uid,
            "node": self.server.url if node is None else node,
            "fxa_uid": secrets.token_hex(16),
            "fxa_kid": "0000000001234-qqo",
            "hashed_fxa_uid": secrets.token_hex(16),
            "hashed_device_id": secrets.token_hex(16),
            "tokenserver_origin": "python",
        }
        data.update(extra)
        token = tokenlib.make_token(data, secret=secret)
        return token, tokenlib.get_derived_secret(token, secret=secret)

    def request(self, method, uid, path, auth, body=None):
        url = "%s/1.5/%d/%s" % (self.server.url, uid, path)
        kwargs = {"auth": auth, "timeout": HTTP_TIMEOUT_S}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        return self.http.request(method, url, **kwargs)

    @staticmethod
    def expect_status(response, status):
        expect(
            response.status_code == status,
            "%s %s: expected %d, got %d %r"
            % (response.request.method, response.request.path_url, status,
               response.status_code, response.text[:200]),
        )

    def mint(self, uid, node):
        env = child_env(self.secret)
        out = subprocess.run(
            [self.binary, "token", "mint", "--uid", str(uid), "--node", node,
             "--data-dir", self.data_dir],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60,
        )
        expect(out.returncode == 0,
               "token mint exited %d: %s" % (out.returncode, out.stderr.strip()))
        return json.loads(out.stdout)

    # -- the checks -------------------------------------------------------------------

    def run(self):
        try:
            self.server = Server(self.binary, self.data_dir, self.secret)
            self.server.wait_ready()
        except Exception as error:
            self.failed += 1
            print("FAIL server starts: %s" % error, flush=True)
            return
        self.passed += 1
        print("PASS server starts (%s)" % self.server.url, flush=True)

        uid = 4242
        token, key = self.python_token(uid)
        auth = HawkAuth(token, key)
        state = {}

        def need(name):
            expect(name in state, "needs the result of an earlier check that failed")
            return state[name]

        def tokenlib_token_authenticates():
            response = self.request("GET", uid, "info/collections", auth)
            self.expect_status(response, 200)
            expect(response.json() == {},
                   "a new user has no collections, got %r" % response.text)

        def put_record():
            response = self.request(
                "PUT", uid, "storage/bookmarks/rec1", auth,
                {"payload": "first record", "sortindex": 5},
            )
            self.expect_status(response, 200)
            expect(TIMESTAMP_BODY.match(response.text),
                   "PUT body is not a timestamp with two decimals: %r" % response.text)
            expect(response.headers.get("X-Last-Modified") == response.text,
                   "X-Last-Modified %r differs from the body %r"
                   % (response.headers.get("X-Last-Modified"), response.text))
            state["put"] = response.text

        def get_record():
            response = self.request("GET", uid, "storage/bookmarks/rec1", auth)
            self.expect_status(response, 200)
            record = response.json()
            expect(record.get("id") == "rec1", "id: %r" % record)
            expect(record.get("payload") == "first record", "payload: %r" % record)
            expect(record.get("sortindex") == 5, "sortindex: %r" % record)
            expect("%.2f" % record.get("modified", -1) == need("put"),
                   "modified %r, PUT said %s" % (record.get("modified"), need("put")))

        def post_records():
            response = self.request(
                "POST", uid, "storage/bookmarks", auth,
                [{"id": "rec2", "payload": "second"},
                 {"id": "rec3", "payload": "third", "sortindex": 1}],
            )
            self.expect_status(response, 200)
            result = response.json()
            expect(sorted(result.get("success", [])) == ["rec2", "rec3"],
                   "success: %r" % result)
            expect(result.get("failed") == {}, "failed: %r" % result)
            modified = "%.2f" % result.get("modified", -1)
            expect(float(modified) > float(need("put")),
                   "POST modified %s is not after the PUT's %s" % (modified, need("put")))
            state["post"] = modified

        def get_full_newer():
            response = self.request(
                "GET", uid, "storage/bookmarks?full=1&newer=%s" % need("put"), auth)
            self.expect_status(response, 200)
            records = response.json()
            expect(isinstance(records, list), "not a list: %r" % response.text)
            by_id = {r.get("id"): r for r in records}
            expect(sorted(by_id) == ["rec2", "rec3"],
                   "expected only the POSTed records, got %r" % sorted(by_id))
            expect(by_id["rec2"].get("payload") == "second"
                   and by_id["rec3"].get("payload") == "third",
                   "payloads: %r" % records)
            expect(all("%.2f" % r.get("modified", -1) == need("post") for r in records),
                   "modified times %r, POST said %s"
                   % ([r.get("modified") for r in records], need("post")))
            expect(response.headers.get("X-Weave-Records") == "2",
                   "X-Weave-Records: %r" % response.headers.get("X-Weave-Records"))

        def info_collections_after_writes():
            response = self.request("GET", uid, "info/collections", auth)
            self.expect_status(response, 200)
            collections = response.json()
            expect(list(collections) == ["bookmarks"], "collections: %r" % collections)
            expect("%.2f" % collections["bookmarks"] == need("post"),
                   "bookmarks at %r, POST said %s" % (collections["bookmarks"], need("post")))

        def delete_record():
            response = self.request("DELETE", uid, "storage/bookmarks/rec1", auth)
            self.expect_status(response, 200)
            modified = response.json().get("modified")
            expect(isinstance(modified, (int, float)) and modified > float(need("post")),
                   "DELETE body: %r" % response.text)
            response = self.request("GET", uid, "storage/bookmarks/rec1", auth)
            self.expect_status(response, 404)
            response = self.request("GET", uid, "storage/bookmarks", auth)
            self.expect_status(response, 200)
            expect(sorted(response.json()) == ["rec2", "rec3"],
                   "ids after DELETE: %r" % response.text)

        def delete_collection():
            response = self.request("DELETE", uid, "storage/bookmarks", auth)
            self.expect_status(response, 200)
            # Mozilla's Rust server answers a bare timestamp, its Python one {"modified": ts}.
            body = response.json()
            if isinstance(body, dict):
                body = body.get("modified")
            expect(isinstance(body, (int, float)) and not isinstance(body, bool),
                   "DELETE body is not a timestamp: %r" % response.text)
            response = self.request("GET", uid, "info/collections", auth)
            self.expect_status(response, 200)
            expect(response.json() == {}, "collections left: %r" % response.text)

        def escaped_id_round_trips():
            # The MAC covers the path as sent; hawkauthlib rebuilds it through WebOb's
            # quoting, so an id that must be percent-encoded checks both agree.
            quoted = "%7Bform%7D%20one"
            response = self.request("PUT", uid, "storage/forms/" + quoted, auth,
                                    {"payload": "escaped"})
            self.expect_status(response, 200)
            response = self.request("GET", uid, "storage/forms?full=1&ids=" + quoted + ",x",
                                    auth)
            self.expect_status(response, 200)
            records = response.json()
            expect([(r.get("id"), r.get("payload")) for r in records]
                   == [("{form} one", "escaped")], "records: %r" % records)

        minted_uid = 777

        def minted_token_parses():
            minted = self.mint(minted_uid, self.server.url)
            data = tokenlib.parse_token(minted["id"], secret=self.secret)
            expect(data.get("uid") == minted_uid, "uid: %r" % data)
            expect(data.get("node") == self.server.url,
                   "node %r, expected %r" % (data.get("node"), self.server.url))
            expect(re.fullmatch(r"[0-9a-f]+", str(data.get("salt", ""))) is not None,
                   "salt: %r" % data)
            expect(data.get("expires", 0) > time.time(), "expires: %r" % data)
            derived = tokenlib.get_derived_secret(minted["id"], secret=self.secret)
            expect(derived == minted["key"],
                   "tokenlib derives %r, syncstack printed %r" % (derived, minted["key"]))
            expect(minted.get("uid") == minted_uid, "printed uid: %r" % minted)
            expect(minted.get("api_endpoint") == "%s/1.5/%d" % (self.server.url, minted_uid),
                   "api_endpoint: %r" % minted)
            state["minted"] = minted

        def minted_token_authenticates():
            minted = state.get("minted") or self.mint(minted_uid, self.server.url)
            response = self.request("GET", minted_uid, "info/collections",
                                    HawkAuth(minted["id"], minted["key"]))
            self.expect_status(response, 200)

        def other_secret_refused():
            other = secrets.token_hex(32)
            bad_token, bad_key = self.python_token(uid, secret=other)
            response = self.request("GET", uid, "info/collections",
                                    HawkAuth(bad_token, bad_key))
            self.expect_status(response, 401)

        def other_node_refused():
            port = int(self.server.url.rsplit(":", 1)[1])
            other_node = "http://127.0.0.1:%d" % (port + 1 if port < 65535 else port - 1)
            bad_token, bad_key = self.python_token(uid, node=other_node)
            response = self.request("GET", uid, "info/collections",
                                    HawkAuth(bad_token, bad_key))
            self.expect_status(response, 401)

        def wrong_hawk_key_refused():
            # A well-formed key, derived for this very token, but from another secret.
            wrong_key = tokenlib.get_derived_secret(token, secret=secrets.token_hex(32))
            expect(wrong_key != key, "the wrong key is the right one")
            response = self.request("GET", uid, "info/collections",
                                    HawkAuth(token, wrong_key))
            self.expect_status(response, 401)

        def expired_token_refused():
            old_token, old_key = self.python_token(uid, expires=time.time() - 60)
            response = self.request("GET", uid, "storage/bookmarks",
                                    HawkAuth(old_token, old_key))
            self.expect_status(response, 401)

        def sigterm_exits_zero():
            code = self.server.terminate()
            expect(code == 0, "exit code %r" % code)

        self.check("tokenlib token authenticates GET info/collections", tokenlib_token_authenticates)
        self.check("PUT a record (body is a 2-decimal timestamp)", put_record)
        self.check("GET the record back", get_record)
        self.check("POST a list of records", post_records)
        self.check("GET ?full=1&newer= returns only newer records", get_full_newer)
        self.check("info/collections shows the POST's timestamp", info_collections_after_writes)
        self.check("DELETE a record", delete_record)
        self.check("DELETE the collection", delete_collection)
        self.check("record id that needs percent-encoding round-trips", escaped_id_round_trips)
        self.check("syncstack token mint parses with tokenlib (uid, node, key)", minted_token_parses)
        self.check("minted token authenticates a hawkauthlib request", minted_token_authenticates)
        self.check("tokenlib token with another secret is refused (401)", other_secret_refused)
        self.check("tokenlib token naming another node is refused (401)", other_node_refused)
        self.check("request signed with a wrong Hawk key is refused (401)", wrong_hawk_key_refused)
        self.check("expired tokenlib token is refused (401)", expired_token_refused)
        self.check("SIGTERM: the server exits 0", sigterm_exits_zero)

    def cleanup(self):
        if self.server is not None:
            self.server.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def dump_log(self):
        if self.server is not None and self.server.log:
            print("--- server log (last 50 lines) ---", file=sys.stderr)
            for line in self.server.log[-50:]:
                print(line, file=sys.stderr)


def main():
    if len(sys.argv) != 2:
        print("usage: %s PATH-TO-SYNCSTACK" % sys.argv[0], file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        print("not an executable: %s" % binary, file=sys.stderr)
        return 2

    interop = Interop(binary)

    def on_signal(signum, _frame):
        interop.cleanup()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        interop.run()
    except KeyboardInterrupt:
        interop.failed += 1
        print("FAIL interrupted", flush=True)
    finally:
        if interop.failed:
            interop.dump_log()
        interop.cleanup()
    print("%d passed, %d failed" % (interop.passed, interop.failed), flush=True)
    return 1 if interop.failed else 0


if __name__ == "__main__":
    sys.exit(main())
