//! The PostgreSQL schema, as an ordered list of migrations (applied by
//! `postgres_support::migrate` under the name `settings`).
//!
//! The SQLite backend's three tables, with two choices of their own:
//!
//! - URI and id columns are `COLLATE "C"`: subtree deletes find the URIs under a URI with a
//!   byte range (`rules::under`), and lists come back in byte order, as on SQLite, which
//!   only holds when text compares bytewise whatever the database's collation.
//! - `data` is `JSON`, not `JSONB`: JSONB refuses the `\u0000` escape, which Kinto clients
//!   may send and the SQLite backend stores, and the store never queries inside the JSON
//!   (the server filters; ADR 0008). `JSON` keeps the text as written and still lets an
//!   operator query it (`data->>'field'`, or `data::jsonb` when no record has `\u0000`).
//!
//! **Invariant** (as on SQLite): every (kind, parent) with a row in `objects` has one in
//! `timestamps`. Each write takes its list's timestamp row first, locked until it commits,
//! which is also what serializes the writers of one list across processes.

/// Each entry moves the schema one version forward. Shipped entries are never edited.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE objects (
        kind          TEXT COLLATE "C" NOT NULL,
        parent        TEXT COLLATE "C" NOT NULL,
        id            TEXT COLLATE "C" NOT NULL,
        last_modified BIGINT NOT NULL,
        data          JSON NOT NULL,
        deleted       BOOLEAN NOT NULL,
        PRIMARY KEY (kind, parent, id)
    );

    CREATE TABLE timestamps (
        kind          TEXT COLLATE "C" NOT NULL,
        parent        TEXT COLLATE "C" NOT NULL,
        last_modified BIGINT NOT NULL,
        PRIMARY KEY (kind, parent)
    );
    CREATE INDEX timestamps_parent ON timestamps (parent);

    CREATE TABLE permissions (
        uri        TEXT COLLATE "C" NOT NULL,
        permission TEXT COLLATE "C" NOT NULL,
        principal  TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (uri, permission, principal)
    );
    CREATE INDEX permissions_principal ON permissions (principal);
    "#,
];
