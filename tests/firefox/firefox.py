"""A headless Firefox with a fresh profile, driven over Marionette, for tests that check
syncstack against Firefox's own code (its Remote Settings client now; Sync sign-in later).

Firefox is started here, not by marionette-driver's launcher, so that each test states the
environment and preferences it needs (Remote Settings on ESR, for instance, only honours a
custom server with `MOZ_REMOTE_SETTINGS_DEVTOOLS=1` in the environment) and gets Firefox's
own log when something fails. The profile starts from Marionette's test preferences (no
update checks, telemetry, first-run pages or remote services), then the test's own.

    with Firefox(binary, prefs={"services.settings.server": url}, env={...}) as firefox:
        value = firefox.chrome("return await SomeModule.call(args.x);", {"x": 1})

`chrome()` runs an async JavaScript function body in the browser's privileged (chrome)
context with `args` in scope; what it returns comes back as JSON, and what it throws is
raised here as `ChromeError` with the JavaScript error's name and message.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time

from marionette_driver.geckoinstance import DesktopInstance
from marionette_driver.marionette import Marionette

START_TIMEOUT_S = 90
QUIT_TIMEOUT_S = 30

# Wraps a test's async function body so that a rejection comes back as a value: Marionette
# reports script errors as bare strings, which would lose the error's class name (the
# thing tests check, e.g. InvalidSignatureError).
_CHROME_WRAPPER = """
const [args, resolve] = arguments;
(async () => { %s })().then(
  value => resolve({ ok: true, value: value === undefined ? null : value }),
  error => resolve({
    ok: false,
    name: (error && error.name) || typeof error,
    message: String((error && error.message) || error),
    stack: String((error && error.stack) || ""),
  })
);
"""


class ChromeError(Exception):
    """A chrome-context script threw; `name` is the JavaScript error's name."""

    def __init__(self, name, message, stack):
        super().__init__("%s: %s" % (name, message))
        self.name = name
        self.message = message
        self.stack = stack


class Firefox:
    """One Firefox process with its own throwaway profile; use it as a context manager."""

    def __init__(self, binary, prefs=None, env=None, args=()):
        self.binary = binary
        self.prefs = dict(DesktopInstance.required_prefs)
        self.prefs.update(DesktopInstance.desktop_prefs)
        # Marionette picks a free port and writes it to the profile (MarionetteActivePort).
        self.prefs["marionette.port"] = 0
        self.prefs.update(prefs or {})
        self.env = dict(env or {})
        self.args = list(args)
        self.profile = None
        self.process = None
        self.client = None
        self.log = []
        self._reader = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.profile = tempfile.mkdtemp(prefix="syncstack-firefox-")
        with open(os.path.join(self.profile, "user.js"), "w") as user_js:
            for name, value in sorted(self.prefs.items()):
                user_js.write("user_pref(%s, %s);\n" % (_js(name), _js(value)))
        env = dict(os.environ)
        env.update({
            "MOZ_HEADLESS": "1",
            # Chrome-context scripts over Marionette need both the flag and this.
            "MOZ_REMOTE_ALLOW_SYSTEM_ACCESS": "1",
            "MOZ_CRASHREPORTER_DISABLE": "1",
        })
        env.update(self.env)
        self.process = subprocess.Popen(
            [
                self.binary, "--headless", "--marionette", "--remote-allow-system-access",
                "--no-remote", "--profile", self.profile,
            ] + self.args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        port = self._wait_for_port()
        self.client = Marionette(host="127.0.0.1", port=port)
        self.client.start_session()

    def _drain(self):
        for line in self.process.stdout:
            self.log.append(line.rstrip("\n"))

    def _wait_for_port(self):
        path = os.path.join(self.profile, "MarionetteActivePort")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("Firefox exited with %s before Marionette was ready:\n%s"
                                   % (self.process.returncode, self.log_tail()))
            try:
                with open(path) as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError("Marionette not ready within %d s:\n%s"
                           % (START_TIMEOUT_S, self.log_tail()))

    def chrome(self, body, args=None, timeout_s=60):
        """Runs `body`, an async JavaScript function body with `args` in scope, in the
        chrome context; returns its JSON result or raises ChromeError."""
        with self.client.using_context(self.client.CONTEXT_CHROME):
            result = self.client.execute_async_script(
                _CHROME_WRAPPER % body,
                script_args=[args or {}],
                script_timeout=int(timeout_s * 1000),
                sandbox="system",
                new_sandbox=True,
            )
        if not result["ok"]:
            raise ChromeError(result["name"], result["message"], result["stack"])
        return result["value"]

    def log_tail(self, lines=60):
        return "\n".join(self.log[-lines:])

    def stop(self):
        """Ends the session, then the process (SIGTERM, SIGKILL after a while); removes
        the profile."""
        if self.client is not None:
            try:
                self.client.delete_session()
            except Exception:
                pass
            self.client = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=QUIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None


def _js(value):
    """A preference name or value as user.js writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')
