#!/usr/bin/env python3
"""Firefox signs in to syncstack's accounts service through syncstack's own pages, and syncs.

`syncstack serve` runs every service on 127.0.0.1; `syncstack accounts add EMAIL
--password-stdin` creates the account. A fresh Firefox ESR profile with only
`identity.fxaccounts.autoconfig.uri` (and `allowHttp`) pointing at the server builds its own
sign-in URL (`FxAccountsConfig.promiseConnectAccountURI`, which fetches the autoconfig
document and begins the OAuth flow: state, PKCE, keys_jwk) and opens it; the test types
into syncstack's page like a person would, through Marionette. Then:

- the page's onepw code gives the protocol's example values (andré@example.org);
- wrong password and unknown account: the page says so, and Firefox stays signed out;
- the right password, submitted with Enter: the page runs onepw, gets a code carrying
  keys_jwe, and hands Firefox the session and the code over the WebChannel; Firefox
  exchanges the code, decrypts the oldsync key, and its account is verified with the key
  id the token server expects;
- Sync: a first sync succeeds, then a bookmark added in that profile reaches the server:
  the CLI, signed in to the same account by `client login --account EMAIL
  --password-stdin` (onepw, as Firefox), has Firefox's key id and lists it;
- Firefox registered its device (`accounts devices` lists it), and Firefox's "Manage
  account" URL shows the account, the page getting the session from Firefox;
- a second fresh profile: the sign-up page refuses a short password and a taken address,
  creates another account outside Firefox's flow (Firefox stays signed out) whose account
  page deletes it, then the profile signs in to the first account and receives the bookmark;
- the reverse: a bookmark the CLI writes (the record shape Firefox syncs, filed in the
  unfiled folder) appears in that profile after a sync;
- Firefox's Manage account page changes the password (a wrong current one refused first):
  Firefox takes the new session and syncs on, and kB (the key id) is unchanged;
- Firefox signs out, and the server forgets its device and session;
- restarted with the default policy (closed once an account exists), the sign-up page
  says so and shows no form.

Usage: accounts_signin.py PATH-TO-SYNCSTACK PATH-TO-FIREFOX
(run by scripts/firefox-interop). Prints one line per check, ends with `N passed, M failed`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import onepw
from firefox import Firefox
from syncstack import CheckFailed, Checks, Server, child_env, expect

EMAIL = "family@example.org"
PASSWORD = "correct horse battery staple"
OTHER_EMAIL = "cousin@example.org"
NEW_PASSWORD = "another horse, another battery"
BOOKMARK_URL = "https://example.org/syncstack-firefox-check"
BOOKMARK_TITLE = "syncstack bookmark from Firefox \u2603"
CLI_BOOKMARK_URL = "https://example.org/syncstack-cli-check"
CLI_BOOKMARK_TITLE = "syncstack bookmark from the CLI"
CLI_BOOKMARK_GUID = "cliBookmark1"
PAGE_TIMEOUT_S = 60
SIGNIN_TIMEOUT_S = 120

JS_MODULES = """
const { getFxAccountsSingleton } = ChromeUtils.importESModule(
  "resource://gre/modules/FxAccounts.sys.mjs");
const { FxAccountsConfig } = ChromeUtils.importESModule(
  "resource://gre/modules/FxAccountsConfig.sys.mjs");
const { Weave } = ChromeUtils.importESModule("resource://services-sync/main.sys.mjs");
const { PlacesUtils } = ChromeUtils.importESModule(
  "resource://gre/modules/PlacesUtils.sys.mjs");
const fxAccounts = getFxAccountsSingleton();
const OLDSYNC = "https://identity.mozilla.com/apps/oldsync";
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
"""
# Firefox's own sign-in URL, exactly as its "Sign in" button builds it.
JS_SIGNIN_URL = JS_MODULES + """
return await FxAccountsConfig.promiseConnectAccountURI("syncstack-test");
"""
JS_ACCOUNT = JS_MODULES + """
const user = await fxAccounts.getSignedInUser();
return user && { email: user.email, uid: user.uid, verified: user.verified };
"""
# Waits until the account is verified and holds the oldsync key, as oauth_login leaves it.
JS_WAIT_SIGNED_IN = JS_MODULES + """
const deadline = Date.now() + args.timeout_ms;
for (;;) {
  const user = await fxAccounts.getSignedInUser();
  if (user && user.verified && await fxAccounts.keys.hasKeysForScope(OLDSYNC)) {
    const key = await fxAccounts.keys.getKeyForScope(OLDSYNC);
    return {
      email: user.email, uid: user.uid, kid: key.kid,
      tokenServer: Services.prefs.getStringPref("identity.sync.tokenserver.uri", ""),
      syncConfigured: Weave.Status.checkSetup() != "service.client_not_configured",
    };
  }
  if (Date.now() > deadline) {
    return { timedOut: true, user: user && { email: user.email, verified: user.verified } };
  }
  await sleep(250);
}
"""
JS_SYNC = JS_MODULES + """
while (Weave.Service.locked) {
  await sleep(250);
}
if (args.newToken) {
  // Forget the storage token, so that this sync asks the token server for a new one.
  Weave.Service.identity._token = null;
}
await Weave.Service.sync({ why: "user", engines: args.engines });
return {
  service: Weave.Status.service,
  sync: Weave.Status.sync,
  login: Weave.Status.login,
  lastSyncError: Weave.Status.engines,
};
"""
JS_MANAGE_URL = JS_MODULES + """
return await FxAccountsConfig.promiseManageURI("syncstack-test");
"""
JS_DEVICE_ID = JS_MODULES + """
const deadline = Date.now() + 30000;
for (;;) {
  const id = await fxAccounts.device.getLocalId();
  if (id || Date.now() > deadline) {
    return id;
  }
  await sleep(250);
}
"""
# Firefox tells the server in the background; it notifies this topic once done.
JS_SIGN_OUT = JS_MODULES + """
const done = new Promise(resolve => {
  const observer = () => {
    Services.obs.removeObserver(observer, "testhelper-fxa-signout-complete");
    resolve();
  };
  Services.obs.addObserver(observer, "testhelper-fxa-signout-complete");
});
await fxAccounts.signOut();
await done;
return await fxAccounts.getSignedInUser();
"""
JS_ADD_BOOKMARK = JS_MODULES + """
const item = await PlacesUtils.bookmarks.insert({
  parentGuid: PlacesUtils.bookmarks.toolbarGuid, url: args.url, title: args.title });
return item.guid;
"""
JS_FIND_BOOKMARK = JS_MODULES + """
const found = await PlacesUtils.bookmarks.fetch({ url: args.url });
return found && { title: found.title, guid: found.guid };
"""
# What the page shows: its view, its messages, and whether Firefox answered fxa_status.
JS_PAGE_STATE = """
const visible = [...document.querySelectorAll("main > section")].filter(s => !s.hidden);
const text = id => { const e = document.getElementById(id); return e.hidden ? "" : e.textContent.trim(); };
return {
  view: visible.map(s => s.dataset.view).join(","),
  error: text("error"),
  status: text("status"),
  firefox: document.body.dataset.firefox || "",
  signUpForm: !document.getElementById("signup-form").hidden,
  text: visible.map(s => [...s.querySelectorAll("p, div")].filter(e => e.offsetParent)
    .map(e => e.textContent).join(" ")).join(" ").replace(/\\s+/g, " "),
  account: text("settings-account") && document.getElementById("settings-email").textContent,
  through: document.getElementById("settings-through").textContent,
  devices: document.getElementById("devices").children.length,
  busy: [...document.forms].some(f => f.getAttribute("aria-busy") === "true"),
  focus: document.activeElement ? document.activeElement.id : "",
  invalid: [...document.querySelectorAll("[aria-invalid=true]")].map(e => e.id),
};
"""

# The page's own onepw code (onepw.js) on the protocol's published example.
JS_PAGE_ONEPW = """
const [resolve] = arguments;
Onepw.stretch("andr\u00e9@example.org", "p\u00e4ssw\u00f6rd").then(
  keys => resolve({ authPW: Onepw.toHex(keys.authPW), unwrapBKey: Onepw.toHex(keys.unwrapBKey) }),
  error => resolve({ error: String(error) }));
"""
ONEPW_EXAMPLE = {
    "authPW": "247b675ffb4c46310bc87e26d712153abe5e1c90ef00a4784594f97ef54f2375",
    "unwrapBKey": "de6a2648b78284fcb9ffa81ba95803309cfba7af583c01a8a1a63e567234dd28",
}


class AccountsChecks(Checks):
    server_log_lines = 25
    firefox_log_lines = 60

    def __init__(self, binary, firefox):
        super().__init__(binary, firefox, "syncstack-firefox-accounts-")

    # --- helpers ----------------------------------------------------------------------------

    def start_firefox(self):
        url = self.server.url
        self.firefox = Firefox(self.firefox_binary, prefs={
            "identity.fxaccounts.autoconfig.uri": url,
            "identity.fxaccounts.allowHttp": True,
            # Marionette's recommended preferences would point these at dummies.
            "identity.fxaccounts.auth.uri": url + "/auth/v1",
            "identity.fxaccounts.loglevel": "Debug",
            "identity.fxaccounts.log.appender.dump": "Debug",
            "services.sync.log.appender.dump": "Info",
            "dom.security.https_only_mode": False,
        })
        self.firefox.start()

    def stop_firefox(self):
        if self.firefox is not None:
            self.firefox.stop()
            self.firefox = None

    def content(self):
        return self.firefox.client.using_context(self.firefox.client.CONTEXT_CONTENT)

    def page_state(self):
        with self.content():
            return self.firefox.client.execute_script(JS_PAGE_STATE)

    def wait_page(self, done, what, timeout_s=PAGE_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.page_state()
            if done(state):
                return state
            if time.monotonic() > deadline:
                raise CheckFailed("page never showed %s; it shows %r" % (what, state))
            time.sleep(0.25)

    def open_signin(self):
        """Opens Firefox's own sign-in URL; returns it once Firefox answered the page."""
        url = self.firefox.chrome(JS_SIGNIN_URL)
        expect(url.startswith(self.server.url + "/?"), "sign-in URL: %s" % url)
        for param in ["context=oauth_webchannel_v1", "keys_jwk=", "code_challenge=",
                      "state=", "client_id=5882386c6d801776"]:
            expect(param in url, "sign-in URL lacks %s: %s" % (param, url))
        with self.content():
            self.firefox.client.navigate(url)
        self.wait_page(lambda s: s["firefox"] == "ready" and s["view"] == "signin",
                       "the sign-in form with Firefox's answer to fxa_status")
        return url

    def fill(self, fields, submit):
        """Types `fields` (id: text) and clicks `submit`; with `submit=None`, presses Enter
        in the last field instead, as a keyboard user would."""
        from marionette_driver.by import By
        from marionette_driver.keys import Keys
        with self.content():
            for element_id, value in fields.items():
                element = self.firefox.client.find_element(By.ID, element_id)
                element.clear()
                element.send_keys(value)
            if submit is None:
                element.send_keys(Keys.ENTER)
            else:
                self.firefox.client.find_element(By.ID, submit).click()

    def submit_and_wait_error(self, fields, submit, expected, signed_out=True, field=None):
        """Submits, waits for the error; with `field`, checks that the error marks that
        field invalid and puts the keyboard focus on it."""
        self.fill(fields, submit)
        state = self.wait_page(lambda s: s["error"] and not s["busy"], "an error")
        expect(expected in state["error"], "error %r lacks %r" % (state["error"], expected))
        if field is not None:
            expect(state["focus"] == field and state["invalid"] == [field],
                   "after %r: focus on %r, invalid %r" % (expected, state["focus"],
                                                          state["invalid"]))
        if signed_out:
            expect(self.firefox.chrome(JS_ACCOUNT) is None, "Firefox signed in after an error")

    def sign_in_and_wait(self):
        self.fill({"signin-email": EMAIL, "signin-password": PASSWORD}, None)
        state = self.wait_page(lambda s: s["view"] == "done" or (s["error"] and not s["busy"]),
                               "the signed-in page", SIGNIN_TIMEOUT_S)
        expect(state["view"] == "done", "page error: %s" % state["error"])
        account = self.firefox.chrome(JS_WAIT_SIGNED_IN, {"timeout_ms": SIGNIN_TIMEOUT_S * 1000},
                                      timeout_s=SIGNIN_TIMEOUT_S + 10)
        expect(not account.get("timedOut"), "Firefox not verified with keys: %r" % account)
        expect(account["email"] == EMAIL, "signed in as %r" % account)
        expect(account["uid"] == self.uid, "uid %s, server has %s" % (account["uid"], self.uid))
        # The key id the token server checks: "<keys changed at, ms>-<SHA-256(kB)[:16]>".
        timestamp, _, fingerprint = account["kid"].partition("-")
        expect(int(timestamp) > 0 and len(fingerprint) == 22, "kid %r" % account["kid"])
        expect(account["tokenServer"] == self.server.url + "/1.0/sync/1.5",
               "token server %r" % account["tokenServer"])
        expect(account["syncConfigured"], "Sync is not configured")
        self.kid = account["kid"]

    def sync(self, engines=None, new_token=False):
        result = self.firefox.chrome(JS_SYNC, {"engines": engines, "newToken": new_token},
                                     timeout_s=120)
        expect(result["service"] == "success.status_ok" and result["sync"] == "success.sync",
               "sync: %r" % result)
        return result

    def cli(self, args, stdin=None):
        done = subprocess.run([self.binary] + args, cwd=self.dir, env=child_env(), input=stdin,
                              capture_output=True, text=True, timeout=120)
        # Tokens and keys are long and say nothing: name the command only.
        shown = " ".join(a if len(a) < 40 else a[:12] + "…" for a in args)
        expect(done.returncode == 0, "syncstack %s: %s%s" % (shown, done.stdout, done.stderr))
        return done.stdout

    # --- the checks ---------------------------------------------------------------------------

    def check_server_and_account(self):
        added = self.cli(["accounts", "add", EMAIL, "--password-stdin"], PASSWORD + "\n")
        match = re.search(r"\(uid ([0-9a-f]{32})\)", added)
        expect(match, "`accounts add` printed:\n" + added)
        self.uid = match.group(1)
        # Sign-up open, so that the sign-up page's refusals can be checked too.
        self.server = Server(self.binary, self.dir, ["--listen", "127.0.0.1:%d" % self.port],
                             {"SYNCSTACK_ACCOUNTS__ALLOW_SIGN_UP": "true"})

    def check_refusals_on_the_page(self):
        self.start_firefox()
        self.open_signin()
        with self.content():
            stretched = self.firefox.client.execute_async_script(JS_PAGE_ONEPW, sandbox=None)
        expect(stretched == ONEPW_EXAMPLE, "the page's onepw: %r" % stretched)
        self.submit_and_wait_error({"signin-email": EMAIL, "signin-password": "not the password"},
                                   "signin-submit", "Incorrect password",
                                   field="signin-password")
        self.submit_and_wait_error({"signin-email": "nobody@example.org",
                                    "signin-password": PASSWORD},
                                   "signin-submit", "There is no account for nobody@example.org",
                                   field="signin-email")

    def check_first_profile_signs_in(self):
        self.sign_in_and_wait()

    def check_first_sync(self):
        self.sync()

    def check_device_and_account_page(self):
        device = self.firefox.chrome(JS_DEVICE_ID, timeout_s=40)
        expect(device, "Firefox registered no device")
        listed = self.cli(["accounts", "devices", EMAIL])
        expect(device in listed, "`accounts devices` lacks %s:\n%s" % (device, listed))
        # Firefox's "Manage account" link: the page asks Firefox for the session.
        url = self.firefox.chrome(JS_MANAGE_URL)
        expect(url.startswith(self.server.url + "/settings?"), "manage URL %s" % url)
        with self.content():
            self.firefox.client.navigate(url)
        state = self.wait_page(lambda s: s["account"] or s["error"], "the account")
        expect(state["account"] == EMAIL and state["through"] == "Firefox"
               and state["devices"] >= 1, "account page: %r" % state)

    def check_bookmark_reaches_the_server(self):
        self.firefox.chrome(JS_ADD_BOOKMARK, {"url": BOOKMARK_URL, "title": BOOKMARK_TITLE})
        self.sync(["bookmarks"])
        # The CLI signs in by onepw as Firefox did: the key id it computes from its kB must
        # be the one Firefox got from the page, and it must decrypt what Firefox wrote.
        client = self.cli_profile()
        self.cli(client + ["login", "--token-server", self.server.url, "--account", EMAIL,
                           "--password-stdin"], PASSWORD + "\n")
        status = self.cli(client + ["status"])
        key_id = re.search(r"key id:\s+(\S+)", status)
        expect(key_id and key_id.group(1) == self.kid,
               "the CLI's key id: %s, Firefox's kid %s" % (status, self.kid))
        listing = self.cli(client + ["bookmarks"])
        expect(BOOKMARK_TITLE in listing and BOOKMARK_URL in listing,
               "`client bookmarks` lacks the bookmark:\n" + listing)
        self.stop_firefox()

    def check_second_profile_receives_it(self):
        self.start_firefox()
        url = self.open_signin()
        # The sign-up page, reached with Firefox's query: its refusals first.
        with self.content():
            self.firefox.client.navigate(url.replace("/?", "/signup?", 1))
        self.wait_page(lambda s: s["view"] == "signup" and s["firefox"] == "ready",
                       "the sign-up form")
        self.submit_and_wait_error({"signup-email": "new@example.org",
                                    "signup-password": "short", "signup-confirm": "short"},
                                   "signup-submit", "at least 8 characters",
                                   field="signup-password")
        self.submit_and_wait_error({"signup-email": EMAIL, "signup-password": PASSWORD,
                                    "signup-confirm": PASSWORD},
                                   "signup-submit", "already exists")
        # Outside Firefox's flow, sign-up (open on this server) leads to the account page.
        with self.content():
            self.firefox.client.navigate(self.server.url + "/signup")
        self.fill({"signup-email": OTHER_EMAIL, "signup-password": PASSWORD,
                   "signup-confirm": PASSWORD}, "signup-submit")
        state = self.wait_page(lambda s: s["account"] or s["error"], "the new account")
        expect(state["account"] == OTHER_EMAIL and state["through"] == "this web page",
               "after sign-up: %r" % state)
        expect(self.firefox.chrome(JS_ACCOUNT) is None, "Firefox signed in by a plain sign-up")
        # ... and that account page deletes it (with its password).
        self.fill({"delete-password": PASSWORD}, "delete-submit")
        state = self.wait_page(lambda s: "was deleted" in s["status"] or s["error"], "deletion")
        expect("was deleted" in state["status"], "deleting: %r" % state)
        listed = self.cli(["accounts", "list"])
        expect(OTHER_EMAIL not in listed and EMAIL in listed, "after deletion:\n" + listed)
        with self.content():
            self.firefox.client.navigate(url)
        self.wait_page(lambda s: s["firefox"] == "ready", "the sign-in form")
        self.sign_in_and_wait()
        self.sync()
        found = self.firefox.chrome(JS_FIND_BOOKMARK, {"url": BOOKMARK_URL})
        expect(found and found["title"] == BOOKMARK_TITLE, "bookmark in profile 2: %r" % found)

    def cli_profile(self):
        return ["client", "--tier2", "--profile", os.path.join(self.dir, "client.json")]

    def check_cli_bookmark_reaches_firefox(self):
        client = self.cli_profile()
        record = {"id": CLI_BOOKMARK_GUID, "type": "bookmark", "title": CLI_BOOKMARK_TITLE,
                  "bmkUri": CLI_BOOKMARK_URL, "parentid": "unfiled",
                  "parentName": "Other Bookmarks", "tags": [], "keyword": None,
                  "dateAdded": int(time.time() * 1000)}
        self.cli(client + ["put", "bookmarks"], json.dumps(record))
        # Filed where Firefox looks: the parent folder lists its children.
        unfiled = json.loads(self.cli(client + ["get", "bookmarks", "unfiled"]))
        unfiled["children"] = unfiled.get("children", []) + [CLI_BOOKMARK_GUID]
        self.cli(client + ["put", "bookmarks"], json.dumps(unfiled))
        self.sync(["bookmarks"])
        found = self.firefox.chrome(JS_FIND_BOOKMARK, {"url": CLI_BOOKMARK_URL})
        expect(found and found["title"] == CLI_BOOKMARK_TITLE
               and found["guid"] == CLI_BOOKMARK_GUID,
               "the CLI's bookmark in Firefox: %r" % found)

    def check_password_change_keeps_sync(self):
        with self.content():
            self.firefox.client.navigate(self.firefox.chrome(JS_MANAGE_URL))
        self.wait_page(lambda s: s["account"] == EMAIL, "the account")
        fields = {"password-old": "not the password", "password-new": NEW_PASSWORD,
                  "password-confirm": NEW_PASSWORD}
        self.submit_and_wait_error(fields, "password-submit", "Incorrect password",
                                   signed_out=False)
        self.fill(dict(fields, **{"password-old": PASSWORD}), "password-submit")
        state = self.wait_page(lambda s: "was changed" in s["status"] or s["error"],
                               "the password changed")
        expect("was changed" in state["status"], "changing the password: %r" % state)
        account = self.firefox.chrome(JS_ACCOUNT)
        expect(account and account["verified"], "Firefox after the change: %r" % account)
        # The old session and access tokens are revoked and the generation moved: Firefox
        # gets a new storage token with the new session and syncs on.
        self.sync(new_token=True)
        _, _, _, key_id = onepw.sync_credentials(self.server.url, EMAIL, NEW_PASSWORD)
        expect(key_id == self.kid, "kB changed with the password: %s, %s" % (key_id, self.kid))

    def check_sign_out(self):
        device = self.firefox.chrome(JS_DEVICE_ID, timeout_s=40)
        expect(device and device in self.cli(["accounts", "devices", EMAIL]),
               "device %s not listed before signing out" % device)
        expect(self.firefox.chrome(JS_SIGN_OUT) is None, "still signed in")
        listed = self.cli(["accounts", "devices", EMAIL])
        expect(device not in listed, "signed out, yet listed:\n" + listed)

    def check_closed_sign_up(self):
        # The default policy: open until the first account exists, then closed.
        self.server.terminate()
        self.server = Server(self.binary, self.dir, ["--listen", "127.0.0.1:%d" % self.port])
        with self.content():
            self.firefox.client.navigate(self.server.url + "/signup")
        state = self.wait_page(lambda s: s["view"] == "signup", "the sign-up page")
        expect(not state["signUpForm"] and "does not take new sign-ups" in state["text"],
               "sign-up page with sign-ups closed: %r" % state)

    def run(self):
        try:
            steps = [
                ("syncstack serve runs and `accounts add` creates the account",
                 self.check_server_and_account),
                ("the page stretches like onepw; refuses a wrong password and an unknown account",
                 self.check_refusals_on_the_page),
                ("Firefox signs in through the page: OAuth code, keys_jwe, oldsync key",
                 self.check_first_profile_signs_in),
                ("Sync's first sync succeeds", self.check_first_sync),
                ("Firefox's device is registered; its Manage account page shows the account",
                 self.check_device_and_account_page),
                ("a bookmark added in Firefox reaches the server (the CLI lists it)",
                 self.check_bookmark_reaches_the_server),
                ("a second fresh profile signs in and receives the bookmark",
                 self.check_second_profile_receives_it),
                ("a bookmark the CLI writes reaches Firefox after a sync",
                 self.check_cli_bookmark_reaches_firefox),
                ("the account page changes the password; kB stays, Firefox syncs on",
                 self.check_password_change_keeps_sync),
                ("Firefox signs out: its device and session are gone from the server",
                 self.check_sign_out),
                ("with sign-ups closed, the sign-up page says so and offers no form",
                 self.check_closed_sign_up),
            ]
            for name, step in steps:
                if not self.check(name, step):
                    break
        finally:
            self.stop_firefox()
            if self.server is not None:
                self.server.kill()
            shutil.rmtree(self.dir, ignore_errors=True)
        print("%d passed, %d failed" % (self.passed, self.failed))
        return self.failed == 0 and self.passed > 0


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ok = AccountsChecks(os.path.abspath(sys.argv[1]), sys.argv[2]).run()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
