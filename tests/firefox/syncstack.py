"""The syncstack side of the Firefox tests: the binary's commands, a `syncstack serve`
child process, and JSON over HTTP with the standard library only (so the Firefox tests
need nothing from PyPI but Marionette)."""

import base64
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

START_TIMEOUT_S = 60
EXIT_TIMEOUT_S = 30
HTTP_TIMEOUT_S = 30


def child_env():
    """Our environment less every SYNCSTACK_* variable: the binary reads them all as
    settings and refuses unknown ones (scripts set some for themselves)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SYNCSTACK_")}


def run(binary, cwd, args):
    """Runs a short command in `cwd`; returns its stdout, raises with its output if it fails."""
    done = subprocess.run([binary] + args, cwd=cwd, env=child_env(), capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError("syncstack %s exited with %d:\n%s%s"
                           % (" ".join(args), done.returncode, done.stdout, done.stderr))
    return done.stdout


class Server:
    """`syncstack serve` in `cwd` (data in ./syncstack-data), JSON logs drained into `log`;
    `url` is its public URL once it logged that it is ready."""

    def __init__(self, binary, cwd, args, env=None):
        env = dict(child_env(), **(env or {}))
        env.setdefault("RUST_LOG", "info")
        self.log = []
        self.process = subprocess.Popen(
            [binary, "serve", "--log-format", "json"] + args,
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        try:
            self.url = self._wait_ready()
        except BaseException:
            self.kill()
            raise

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
                raise RuntimeError("syncstack serve exited before it was ready:\n"
                                   + "\n".join(self.log[-20:]))
            try:
                fields = json.loads(line).get("fields") or {}
            except (ValueError, AttributeError):
                continue
            if fields.get("message") == "syncstack ready":
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


def call(method, url, auth=None, body=None):
    """One HTTP request with an optional JSON body and Basic auth (`(user, password)`);
    returns `(status, parsed JSON or None)`, whatever the status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth is not None:
        token = base64.b64encode(("%s:%s" % auth).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as reply:
            status, text = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    return status, (json.loads(text) if text else None)


class CheckFailed(Exception):
    """A check's expectation did not hold (as opposed to an error while running it)."""


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def free_port():
    """A loopback port free right now, for a server started next."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Checks:
    """Runs named checks against a syncstack server and a Firefox, counting what passed and
    printing the tails of both logs when one fails. `self.server` and `self.firefox` are set
    by the subclass once it has started them."""

    server_log_lines = 25
    firefox_log_lines = 60

    def __init__(self, binary, firefox, prefix):
        self.binary = binary
        self.firefox_binary = firefox
        self.passed = 0
        self.failed = 0
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.server = None
        self.firefox = None
        self.port = free_port()

    def check(self, name, function):
        started = time.monotonic()
        try:
            function()
        except Exception as error:
            self.failed += 1
            print("FAIL %s (%.1f s): %s" % (name, time.monotonic() - started, error))
            if not isinstance(error, CheckFailed):
                traceback.print_exc()
            if self.server is not None:
                print("  server log tail:\n    "
                      + "\n    ".join(self.server.log[-self.server_log_lines:]))
            if self.firefox is not None:
                print("  Firefox log tail:\n    "
                      + self.firefox.log_tail(self.firefox_log_lines).replace("\n", "\n    "))
            sys.stdout.flush()
            return False
        self.passed += 1
        print("ok   %s (%.1f s)" % (name, time.monotonic() - started))
        sys.stdout.flush()
        return True

