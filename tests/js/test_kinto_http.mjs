// kinto-http.js 5.3 (npm), the JavaScript client of Kinto that Kinto Admin is built on,
// against syncstack's Remote Settings server. Run by scripts/js-interop with node's test
// runner; the server's URL (ending in /v1) is in KINTO_HTTP_SERVER_URL.
//
// Every call is one documented in kinto-http.js's README, made as a user moving from Kinto
// would make it; the expectations were checked against Kinto 26.5 too.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { createRequire } from "node:module";

const require = createRequire(process.env.KINTO_HTTP_MODULES + "/");
const KintoClient = require("kinto-http").default;
const server = process.env.KINTO_HTTP_SERVER_URL;

/** A new account, created with the credentials it will have, and a client using them. */
async function newUser() {
  const name = "js-" + randomBytes(5).toString("hex");
  const password = randomBytes(8).toString("hex");
  const auth = "Basic " + Buffer.from(`${name}:${password}`).toString("base64");
  const client = new KintoClient(server, { headers: { Authorization: auth } });
  await client.execute({
    path: `/accounts/${name}`,
    method: "PUT",
    body: { data: { password } },
  });
  return { client, name, auth };
}

async function newCollection(client) {
  const id = "b-" + randomBytes(5).toString("hex");
  await client.createBucket(id);
  const bucket = client.bucket(id);
  await bucket.createCollection("tasks");
  return { id, bucket, collection: bucket.collection("tasks") };
}

test("the capabilities clients look for are announced", async () => {
  // Kinto Admin sends `Authorization: undefined` while nobody is logged in.
  const anonymous = new KintoClient(server, {
    headers: { Authorization: "undefined" },
  });
  const info = await anonymous.fetchServerInfo();
  for (const name of ["accounts", "history", "permissions_endpoint"]) {
    assert.ok(name in info.capabilities, name);
  }
  assert.equal(info.user, undefined);
});

test("accounts, buckets, groups and collections", async () => {
  const { client, name } = await newUser();
  const info = await client.fetchServerInfo();
  assert.equal(info.user.id, `account:${name}`);
  const { id, bucket } = await newCollection(client);
  assert.ok((await client.listBuckets()).data.some((b) => b.id === id));
  await bucket.setData({ title: "Tasks" }, { patch: true });
  assert.equal((await bucket.getData()).title, "Tasks");
  await bucket.createGroup("editors", [`account:${name}`]);
  assert.deepEqual(
    (await bucket.listGroups()).data.map((g) => g.id),
    ["editors"],
  );
  await bucket.createCollection("notes");
  const names = (await bucket.listCollections()).data.map((c) => c.id).sort();
  assert.deepEqual(names, ["notes", "tasks"]);
  await bucket.deleteCollection("notes");
  await assert.rejects(bucket.collection("notes").getData(), (error) => {
    assert.equal(error.data.code, 404);
    return true;
  });
});

test("records: create, update, patch, JSON Patch, list, delete", async () => {
  const { client, auth } = await newUser();
  const { id, collection } = await newCollection(client);
  const { data: created } = await collection.createRecord({ title: "one" });
  await collection.updateRecord({ ...created, title: "uno", done: false });
  await collection.updateRecord({ id: created.id, done: true }, { patch: true });
  await client.execute({
    path: `/buckets/${id}/collections/tasks/records/${created.id}`,
    method: "PATCH",
    headers: { Authorization: auth, "Content-Type": "application/json-patch+json" },
    body: [
      { op: "add", path: "/data/priority", value: 2 },
      { op: "remove", path: "/data/done" },
    ],
  });
  const { data: record } = await collection.getRecord(created.id);
  assert.equal(record.title, "uno");
  assert.equal(record.priority, 2);
  assert.equal(record.done, undefined);
  const since = (await collection.listRecords()).last_modified;
  for (let rank = 0; rank < 5; rank++) {
    await collection.createRecord({ rank });
  }
  const newer = await collection.listRecords({ since });
  assert.equal(newer.data.length, 5);
  const sorted = await collection.listRecords({
    sort: "-rank",
    filters: { has_rank: true },
  });
  assert.deepEqual(sorted.data.map((r) => r.rank), [4, 3, 2, 1, 0]);
  const paged = await collection.listRecords({
    sort: "rank",
    filters: { has_rank: true },
    limit: 2,
    pages: Infinity,
  });
  assert.deepEqual(paged.data.map((r) => r.rank), [0, 1, 2, 3, 4]);
  await collection.deleteRecord(created.id);
  const tombstones = await collection.listRecords({ since, filters: { deleted: true } });
  assert.deepEqual(tombstones.data.map((r) => r.id), [created.id]);
});

test("batch", async () => {
  const { client } = await newUser();
  const { collection } = await newCollection(client);
  const results = await collection.batch((batch) => {
    for (let n = 0; n < 30; n++) {
      batch.createRecord({ n });
    }
  }, { aggregate: true });
  assert.equal(results.published.length, 30);
  assert.equal((await collection.listRecords()).data.length, 30);
});

test("permissions and history", async () => {
  const { client, name } = await newUser();
  const other = await newUser();
  const { id, bucket, collection } = await newCollection(client);
  await assert.rejects(
    other.client.bucket(id).collection("tasks").listRecords(),
    (error) => error.data.code === 403,
  );
  await collection.setPermissions({ read: [`account:${other.name}`] }, { patch: true });
  assert.deepEqual(
    (await other.client.bucket(id).collection("tasks").listRecords()).data,
    [],
  );
  const permissions = (await client.listPermissions({ pages: Infinity })).data;
  const root = permissions.find((p) => p.uri === "/");
  assert.ok(root.permissions.includes("bucket:create"));
  const entry = permissions.find((p) => p.uri === `/buckets/${id}`);
  assert.equal(entry.bucket_id, id);
  assert.ok(entry.permissions.includes("collection:create"));
  await collection.createRecord({ v: 1 }, { });
  const history = await bucket.listHistory({
    filters: { resource_name: "record" },
  });
  assert.deepEqual(history.data.map((e) => e.action), ["create"]);
  assert.equal(history.data[0].user_id, `account:${name}`);
});

// Attachments are covered by the Python client's tests: kinto-http.js 5.3 on Node sends
// them with node-fetch 2, which cannot send Node's own FormData (Kinto refuses that
// request too).
