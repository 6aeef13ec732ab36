#!/usr/bin/env python3
"""Firefox's own Remote Settings client against `syncstack serve`.

syncstack signs under the intermediate Mozilla published for Firefox's built-in local root
(`settings pki init --intermediate-cert/--intermediate-key`, files in
crates/content-signature/tests/data/), records are published through the review workflow
(an editor asks for review, a reviewer approves), then an unmodified Firefox ESR, pointed
at the server, syncs and reads them with `RemoteSettings(name).sync()` and `.get()`:
Firefox verifies the signature itself, against its own root. Then the server's copy is
altered behind the signer's back and Firefox must refuse it (InvalidSignatureError).

Usage: remote_settings.py PATH-TO-SYNCSTACK PATH-TO-FIREFOX
(run by scripts/firefox-interop). Prints one line per check, ends with `N passed, M failed`.
"""

import os
import shutil
import sqlite3
import sys
import time

from firefox import ChromeError, Firefox
from syncstack import CheckFailed, Checks, Server, call, expect, run

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "crates", "content-signature", "tests", "data")
INTERMEDIATE = os.path.join(DATA, "mozilla-local-dev-intermediate.pem")
INTERMEDIATE_KEY = os.path.join(DATA, "mozilla-local-dev-intermediate-key.pem")
# SHA-256 of Firefox's ContentSignatureLocalRoot, the pin `pki init` must print.
LOCAL_ROOT = ("5E:36:F2:14:DE:82:3F:8B:29:96:89:23:5F:03:41:AC:"
              "AF:A0:75:AF:82:CB:4C:D4:30:7C:3D:B3:43:39:2A:FE")
# After this (2029-03-21 16:45:47 UTC) the intermediate has expired: the route is closed.
INTERMEDIATE_NOT_AFTER = 1868805947

COLLECTION = "syncstack-firefox-check"
WORKSPACE = "/buckets/main-workspace/collections/" + COLLECTION

# Firefox's client in the chrome context: its module, the root it picked, a sync, a read.
JS_SETUP = """
const { RemoteSettings } = ChromeUtils.importESModule(
  "resource://services-settings/remote-settings.sys.mjs");
const { Utils } = ChromeUtils.importESModule(
  "resource://services-settings/Utils.sys.mjs");
"""
JS_ENVIRONMENT = JS_SETUP + """
return {
  server: Utils.SERVER_URL,
  localRoot: Utils.CERT_CHAIN_ROOT_IDENTIFIER ==
    Ci.nsIContentSignatureVerifier.ContentSignatureLocalRoot,
};
"""
JS_SYNC_AND_GET = JS_SETUP + """
const client = RemoteSettings(args.collection);
await client.sync();
const records = await client.get({ syncIfEmpty: false, verifySignature: true });
records.sort((a, b) => a.id.localeCompare(b.id));
return {
  records: records.map(({ id, last_modified, schema, ...fields }) => ({ id, ...fields })),
  timestamp: await client.db.getLastModified(),
};
"""
# What Firefox does on its own (a timer, or a push): poll the monitor for every collection,
# with the last ETag as `_since`, and sync the clients whose collection changed.
JS_POLL_AND_GET = JS_SETUP + """
await RemoteSettings.pollChanges({ trigger: "manual" });
const records = await RemoteSettings(args.collection).get({
  syncIfEmpty: false, verifySignature: true });
records.sort((a, b) => a.id.localeCompare(b.id));
return {
  records: records.map(({ id, last_modified, schema, ...fields }) => ({ id, ...fields })),
  etag: Services.prefs.getStringPref("services.settings.last_etag", ""),
};
"""
JS_SYNC_ONLY = JS_SETUP + """
await RemoteSettings(args.collection).sync();
return (await RemoteSettings(args.collection).get({ syncIfEmpty: false })).length;
"""
# What Firefox's own components do at start-up with collections this server does not hold
# (search-config-v2, nimbus, onecrl, …): ask the monitor for that one collection, and on an
# empty list report it unknown and read it as empty (or as the dump Firefox ships, for some).
# Any other answer is a server error.
JS_UNKNOWN = JS_SETUP + """
const results = {};
for (const [bucket, collection] of args.collections) {
  const { changes } = await Utils.fetchLatestChanges(Utils.SERVER_URL, {
    filters: { bucket, collection },
  });
  let syncError = null;
  try {
    await RemoteSettings(collection, { bucketName: bucket }).sync();
  } catch (e) {
    syncError = e.name;
  }
  const records = await RemoteSettings(collection, { bucketName: bucket }).get();
  results[bucket + "/" + collection] = { changes, syncError, records: records.length };
}
return results;
"""
STARTUP_COLLECTIONS = [["main", "search-config-v2"], ["main", "nimbus-desktop-experiments"],
                       ["security-state", "onecrl"], ["main", "not-on-this-server"]]


class RemoteSettingsChecks(Checks):
    server_log_lines = 15
    firefox_log_lines = 40

    def __init__(self, binary, firefox):
        super().__init__(binary, firefox, "syncstack-firefox-rs-")

    # --- the server side --------------------------------------------------------------

    def start_server(self):
        # Firefox's sync() asks the monitor with `_expected=0`, whose answer it may cache
        # for this long: 0, so that it sees each review at once (as a local server should).
        self.server = Server(self.binary, self.dir,
                             ["--services", "settings", "--listen", "127.0.0.1:%d" % self.port],
                             {"SYNCSTACK_SETTINGS_RECORD_CACHE_MINIMUM_EXPIRES_SECONDS": "0"})
        self.api = self.server.url + "/v1"

    def request(self, method, path, user=None, body=None):
        auth = (user, user + " password") if user else None
        status, reply = call(method, self.api + path, auth, body)
        expect(status < 300, "%s %s as %s: %s %s" % (method, path, user, status, reply))
        return reply

    def review(self):
        """The editor asks for review, the reviewer approves: the plugin signs `main`."""
        self.request("PATCH", WORKSPACE, "editor", {"data": {"status": "to-review"}})
        self.request("PATCH", WORKSPACE, "reviewer", {"data": {"status": "to-sign"}})

    def check_signer_under_local_root(self):
        out = run(self.binary, self.dir, [
            "settings", "pki", "init",
            "--intermediate-cert", INTERMEDIATE, "--intermediate-key", INTERMEDIATE_KEY,
            "--days", "30",
        ])
        expect(out.splitlines()[-1] == LOCAL_ROOT, "pki init printed:\n" + out)

    def check_publish_through_review(self):
        self.start_server()
        for user in ["admin", "editor", "reviewer"]:
            self.request("PUT", "/accounts/" + user, None,
                         {"data": {"password": user + " password"}})
        self.request("PUT", "/buckets/main-workspace", "admin", {})
        self.request("PUT", WORKSPACE, "admin", {})
        groups = "/buckets/main-workspace/groups/" + COLLECTION
        self.request("PATCH", groups + "-editors", "admin",
                     {"data": {"members": ["account:editor"]}})
        self.request("PATCH", groups + "-reviewers", "admin",
                     {"data": {"members": ["account:reviewer"]}})
        self.published = {
            "alpha": {"title": "Zoë's \u2603 record", "n": 1, "tags": ["b", "a"],
                      "nested": {"z": True, "a": None}},
            "beta": {"title": "with \"quotes\" and \\ slashes", "n": -42,
                     "emoji": "\U0001F600", "control": "tab\there"},
            "gamma": {"title": "to be deleted", "n": 0},
        }
        for record_id, fields in self.published.items():
            self.request("PUT", WORKSPACE + "/records/" + record_id, "editor",
                         {"data": fields})
        self.review()
        changeset = self.request(
            "GET", "/buckets/main/collections/%s/changeset?_expected=0" % COLLECTION)
        signatures = changeset["metadata"].get("signatures") or []
        expect(signatures and signatures[0]["x5u"].startswith(self.server.url),
               "metadata.signatures: %r" % changeset["metadata"])
        expect(len(changeset["changes"]) == 3, "published: %r" % changeset["changes"])

    # --- Firefox ----------------------------------------------------------------------

    def start_firefox(self):
        return Firefox(
            self.firefox_binary,
            prefs={
                "services.settings.server": self.api,
                "services.settings.loglevel": "debug",
            },
            # Release and ESR builds ignore services.settings.server without it.
            env={"MOZ_REMOTE_SETTINGS_DEVTOOLS": "1"},
        )

    def expected(self, records):
        return [dict(fields, id=record_id) for record_id, fields in sorted(records.items())]

    def check_firefox(self):
        with self.start_firefox() as firefox:
            self.firefox = firefox
            self.check("Firefox uses this server and its local root",
                       lambda: self.check_environment(firefox))
            self.check("Firefox syncs the published records and verifies their signature",
                       lambda: self.check_first_sync(firefox))
            self.check("Firefox's start-up reads of collections not held are empty, no error",
                       lambda: self.check_unknown(firefox))
            self.check("Firefox's own poll applies a second review (update, delete)",
                       lambda: self.check_second_review(firefox))
            self.check("Firefox refuses the server's copy altered behind the signer",
                       lambda: self.check_tampered(firefox))
        self.firefox = None

    def check_environment(self, firefox):
        environment = firefox.chrome(JS_ENVIRONMENT)
        expect(environment == {"server": self.api, "localRoot": True},
               "Firefox's Remote Settings environment: %r" % environment)

    def check_first_sync(self, firefox):
        result = firefox.chrome(JS_SYNC_AND_GET, {"collection": COLLECTION})
        expect(result["records"] == self.expected(self.published),
               "Firefox holds %r" % result["records"])

    def check_unknown(self, firefox):
        results = firefox.chrome(JS_UNKNOWN, {"collections": STARTUP_COLLECTIONS})
        for name, result in results.items():
            expect(result["changes"] == [] and result["syncError"] == "UnknownCollectionError",
                   "%s: %r" % (name, result))
        unknown = results["main/not-on-this-server"]["records"]
        expect(unknown == 0, "a collection neither held nor packaged reads as %d records" % unknown)

    def check_second_review(self, firefox):
        self.request("PATCH", WORKSPACE + "/records/alpha", "editor",
                     {"data": {"title": "alpha, edited"}})
        self.request("DELETE", WORKSPACE + "/records/gamma", "editor")
        self.review()
        self.published["alpha"]["title"] = "alpha, edited"
        del self.published["gamma"]
        result = firefox.chrome(JS_POLL_AND_GET, {"collection": COLLECTION})
        expect(result["records"] == self.expected(self.published),
               "Firefox holds %r" % result["records"])
        monitor = self.request("GET", "/buckets/monitor/collections/changes/changeset"
                                      "?_expected=0")
        expect(result["etag"].strip('"') == str(monitor["timestamp"]),
               "Firefox's last ETag %r, the monitor's timestamp %r"
               % (result["etag"], monitor["timestamp"]))

    def check_tampered(self, firefox):
        # Stop the server, change a signed record in `main` directly in its database (a
        # newer timestamp, so clients fetch it), and start it again on the same port.
        self.server.terminate()
        self.server = None
        records = "/buckets/main/collections/" + COLLECTION
        with sqlite3.connect(os.path.join(self.dir, "syncstack-data", "settings.db")) as db:
            (newest,) = db.execute(
                "SELECT last_modified FROM timestamps WHERE kind = 'records' AND parent = ?",
                (records,)).fetchone()
            changed = db.execute(
                "UPDATE objects SET data = json_set(data, '$.title', 'tampered'), "
                "last_modified = ? WHERE kind = 'records' AND parent = ? AND id = 'beta'",
                (newest + 1, records)).rowcount
            db.execute("UPDATE timestamps SET last_modified = ? "
                       "WHERE kind = 'records' AND parent = ?", (newest + 1, records))
        expect(changed == 1, "no record to tamper with")
        self.start_server()
        try:
            count = firefox.chrome(JS_SYNC_ONLY, {"collection": COLLECTION})
        except ChromeError as error:
            expect(error.name == "InvalidSignatureError",
                   "sync failed with %s, not InvalidSignatureError" % error)
        else:
            raise CheckFailed("Firefox accepted the altered collection (%r records)" % count)
        # What Firefox holds is still the last verified data.
        held = firefox.chrome(JS_SETUP + """
            return (await RemoteSettings(args.collection).get({ syncIfEmpty: false }))
              .map(r => r.title).sort();""", {"collection": COLLECTION})
        verified = sorted(fields["title"] for fields in self.published.values())
        expect(held == verified,
               "Firefox holds %r, not the last verified titles %r" % (held, verified))

    def run(self):
        try:
            if time.time() >= INTERMEDIATE_NOT_AFTER:
                print("Mozilla's local-dev intermediate expired on 2029-03-21: Firefox can no "
                      "longer be made to trust a local server this way (see "
                      "crates/content-signature/tests/data/README.md)")
                self.failed += 1
                return
            if not self.check("pki init signs under Firefox's local root",
                              self.check_signer_under_local_root):
                return
            if not self.check("records published through the review workflow",
                              self.check_publish_through_review):
                return
            self.check_firefox()
        finally:
            if self.server is not None:
                self.server.kill()
            print("%d passed, %d failed" % (self.passed, self.failed))
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    checks = RemoteSettingsChecks(os.path.abspath(sys.argv[1]), sys.argv[2])
    checks.run()
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
