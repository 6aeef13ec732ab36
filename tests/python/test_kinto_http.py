"""kinto-http.py, the Python client of Kinto, against syncstack's Remote Settings server.

Every call here is one documented in kinto-http's README, made as a user moving from Kinto
would make it. Run by scripts/python-interop (pytest, with the pinned requirements):

    SYNCSTACK_BIN=target/debug/syncstack pytest tests/python/test_kinto_http.py

With KINTO_HTTP_SERVER_URL set (e.g. http://127.0.0.1:8888/v1 of a Kinto 26.5 with the
accounts, history, flush and kinto-attachment plugins), the same tests run against that
server instead, which is how their expectations were checked against Kinto itself.
"""

import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests
from kinto_http import Client, KintoException
from kinto_http.patch_type import JSONPatch, MergePatch

START_TIMEOUT_S = 60


class Server:
    """`syncstack serve --services settings` on a free port, with Kinto's test settings."""

    def __init__(self, binary, data_dir):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCSTACK_")}
        env.update(
            {
                "SYNCSTACK_MASTER_SECRET": secrets.token_hex(16),
                # Written the way a Kinto operator writes them.
                "SYNCSTACK_SETTINGS_FLUSH_ENDPOINT_ENABLED": "true",
                "SYNCSTACK_SETTINGS_EXPERIMENTAL_PERMISSIONS_ENDPOINT": "true",
                "SYNCSTACK_SETTINGS_ACCOUNT_CREATE_PRINCIPALS": "system.Everyone",
                "SYNCSTACK_SETTINGS_BUCKET_CREATE_PRINCIPALS": "system.Authenticated",
                "RUST_LOG": "info",
            }
        )
        self.log = []
        self.process = subprocess.Popen(
            [
                binary, "serve",
                "--services", "settings",
                "--listen", "127.0.0.1:0",
                "--log-format", "json",
                "--data-dir", data_dir,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = None
        ready = threading.Event()

        def drain():
            for line in self.process.stderr:
                self.log.append(line)
                if self.url is not None:
                    continue
                try:
                    fields = json.loads(line).get("fields", {})
                except ValueError:
                    continue
                if isinstance(fields, dict) and fields.get("message") == "syncstack ready":
                    self.url = fields["public_url"].rstrip("/") + "/v1"
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        ready.wait(START_TIMEOUT_S)
        if self.url is None:
            self.process.kill()
            raise RuntimeError("syncstack did not start:\n" + "".join(self.log[-30:]))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/__heartbeat__", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("syncstack does not answer")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def server_url():
    external = os.environ.get("KINTO_HTTP_SERVER_URL")
    if external:
        yield external.rstrip("/")
        return
    binary = os.environ.get("SYNCSTACK_BIN", "target/debug/syncstack")
    with tempfile.TemporaryDirectory() as data_dir:
        server = Server(binary, data_dir)
        try:
            yield server.url
        finally:
            server.stop()


def new_user(server_url):
    """A new account, created as kinto-http users do: with the credentials it will have."""
    name = "user-" + uuid.uuid4().hex[:10]
    password = secrets.token_hex(8)
    client = Client(server_url=server_url, auth=(name, password))
    client.session.request("put", "/accounts/" + name, data={"password": password})
    return client, name


@pytest.fixture
def alice(server_url):
    return new_user(server_url)


@pytest.fixture
def bucket(alice):
    client, _ = alice
    name = "b-" + uuid.uuid4().hex[:10]
    client.create_bucket(id=name)
    client.create_collection(id="tasks", bucket=name)
    return name


def test_server_info_announces_what_clients_use(server_url):
    info = Client(server_url=server_url).server_info()
    for capability in ("accounts", "history", "permissions_endpoint", "attachments"):
        assert capability in info["capabilities"], capability
    assert "user" not in info


def test_accounts(server_url, alice):
    client, name = alice
    info = client.server_info()
    assert info["user"]["id"] == "account:" + name
    wrong = Client(server_url=server_url, auth=(name, "wrong"))
    assert "user" not in wrong.server_info()
    with pytest.raises(KintoException) as refused:
        wrong.get_buckets()
    assert refused.value.response.status_code == 401


def test_buckets_groups_and_collections(server_url, alice, bucket):
    client, name = alice
    assert bucket in [b["id"] for b in client.get_buckets()]
    client.patch_bucket(id=bucket, data={"title": "Tasks"})
    assert client.get_bucket(id=bucket)["data"]["title"] == "Tasks"
    group = client.create_group(id="editors", bucket=bucket, data={"members": ["account:" + name]})
    assert group["data"]["members"] == ["account:" + name]
    client.update_group(id="editors", bucket=bucket, data={"members": []})
    assert [g["id"] for g in client.get_groups(bucket=bucket)] == ["editors"]
    client.delete_group(id="editors", bucket=bucket)
    client.create_collection(id="notes", bucket=bucket, data={"sort": "-title"})
    names = sorted(c["id"] for c in client.get_collections(bucket=bucket))
    assert names == ["notes", "tasks"]
    client.delete_collection(id="notes", bucket=bucket)
    with pytest.raises(KintoException) as missing:
        client.get_collection(id="notes", bucket=bucket)
    assert missing.value.response.status_code == 404
    client.create_bucket(id=bucket + "-2")
    deleted = client.delete_buckets()
    assert {bucket, bucket + "-2"} <= {b["id"] for b in deleted}
    assert client.get_buckets() == []


def test_records(alice, bucket):
    client, _ = alice
    client = client.clone(bucket=bucket, collection="tasks")
    created = client.create_record(data={"title": "one", "done": False})
    rid = created["data"]["id"]
    client.update_record(id=rid, data={"title": "uno", "done": False})
    client.patch_record(id=rid, data={"done": True})
    client.patch_record(id=rid, changes=MergePatch({"tags": ["a"]}))
    client.patch_record(
        id=rid,
        changes=JSONPatch(
            [
                {"op": "remove", "path": "/data/tags"},
                {"op": "add", "path": "/data/priority", "value": 2},
                {"op": "add", "path": "/permissions/read/system.Everyone", "value": True},
            ]
        ),
    )
    record = client.get_record(id=rid)
    assert record["data"]["title"] == "uno"
    assert record["data"]["done"] is True
    assert "tags" not in record["data"]
    assert record["data"]["priority"] == 2
    assert "system.Everyone" in record["permissions"]["read"]
    since = client.get_records_timestamp()
    for i in range(5):
        client.create_record(data={"title": "t%d" % i, "rank": i})
    newer = client.get_records(_since=since)
    assert sorted(r["rank"] for r in newer) == list(range(5))
    ranks = [r["rank"] for r in client.get_records(_sort="-rank", has_rank=True)]
    assert ranks == [4, 3, 2, 1, 0]
    pages = list(client.get_paginated_records(_limit=2, _sort="rank", has_rank=True))
    assert len(pages) == 3
    assert [r["rank"] for page in pages for r in page["data"]] == [0, 1, 2, 3, 4]
    client.delete_record(id=rid)
    tombstones = client.get_records(_since=since, deleted=True)
    assert [r["id"] for r in tombstones] == [rid]
    client.delete_records()
    assert client.get_records() == []


def test_batch(alice, bucket):
    client, _ = alice
    with client.batch(bucket=bucket, collection="tasks") as batch:
        for i in range(30):
            batch.create_record(data={"n": i})
        batch.update_record(id="r-x", data={"via": "batch"})
    # 31 requests, sent as two batches of at most `batch_max_requests` (25).
    assert len(batch.results()) == 31
    assert len(client.get_records(bucket=bucket, collection="tasks")) == 31


def test_permissions(server_url, alice, bucket):
    client, name = alice
    other, other_name = new_user(server_url)
    with pytest.raises(KintoException) as refused:
        other.get_records(bucket=bucket, collection="tasks")
    assert refused.value.response.status_code == 403
    client.patch_collection(
        id="tasks", bucket=bucket, permissions={"read": ["account:" + other_name]}
    )
    assert other.get_records(bucket=bucket, collection="tasks") == []
    entries = client.get_permissions(exclude_resource_names=["record"])
    by_uri = {e["uri"]: e for e in entries}
    assert "bucket:create" in by_uri["/"]["permissions"]
    entry = by_uri["/buckets/%s" % bucket]
    assert entry["bucket_id"] == bucket
    assert {"write", "read", "collection:create"} <= set(entry["permissions"])
    assert all(e["resource_name"] != "record" for e in entries)


def test_history(alice, bucket):
    client, name = alice
    client.create_record(bucket=bucket, collection="tasks", id="h1", data={"v": 1})
    client.patch_record(bucket=bucket, collection="tasks", id="h1", data={"v": 2})
    client.delete_record(bucket=bucket, collection="tasks", id="h1")
    entries = client.get_history(bucket=bucket, resource_name="record", record_id="h1")
    assert [e["action"] for e in entries] == ["delete", "update", "create"]
    assert entries[1]["target"]["data"]["v"] == 2
    assert entries[1]["user_id"] == "account:" + name
    assert entries[1]["collection_id"] == "tasks"
    assert entries[1]["uri"] == "/buckets/%s/collections/tasks/records/h1" % bucket
    collections = client.get_history(bucket=bucket, resource_name="collection")
    assert [e["action"] for e in collections] == ["create"]
    client.purge_history(bucket=bucket)
    assert client.get_history(bucket=bucket) == []


def test_attachments(alice, bucket, tmp_path):
    client, _ = alice
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello")
    client.add_attachment(
        id="with-file",
        filepath=str(path),
        bucket=bucket,
        collection="tasks",
        data={"title": "greeting"},
        permissions={"read": ["system.Everyone"]},
    )
    record = client.get_record(id="with-file", bucket=bucket, collection="tasks")
    assert record["data"]["title"] == "greeting"
    assert record["data"]["attachment"]["size"] == 5
    assert "system.Everyone" in record["permissions"]["read"]
    downloaded = client.download_attachment(record["data"], filepath=str(tmp_path / "out"))
    with open(downloaded, "rb") as f:
        assert f.read() == b"hello"
    client.remove_attachment(id="with-file", bucket=bucket, collection="tasks")
    record = client.get_record(id="with-file", bucket=bucket, collection="tasks")
    assert record["data"]["attachment"] is None
