//! The storage node over a real socket: every endpoint, parameter and error path.
//!
//! What belongs where:
//! - `auth`: Hawk, tokens, nodes, uids, reverse-proxy prefixes.
//! - `info`: the `info/*` views and dockerflow endpoints.
//! - `collections`: collection GET and DELETE, query parameters, output formats, paging.
//! - `records`: single-record GET, PUT, DELETE, TTL, conditional requests.
//! - `post`: non-batch POST, per-record failures, declared sizes, body formats.
//! - `batch`: batch uploads.
//! - `limits`: request size limits and quotas.
//! - `concurrency`: racing writers and paging during writes.
//!
//! One binary for the whole suite keeps link time down; `common` holds the harness.

mod common;

mod auth;
mod batch;
mod collections;
mod concurrency;
mod info;
mod limits;
mod post;
mod records;
