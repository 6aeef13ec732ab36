//! The Remote Settings client against syncstack's real server over sockets, behind a
//! proxy that tampers with responses: every failure the ADR names, and the flows that
//! must keep working (polling, filters, backoff, dumps, attachments).
//!
//! - `harness`: the server, the tampering proxy, publishing helpers.
//! - `failures`: each way a sync can fail, asserting what `get` returns, what status is
//!   recorded, and that the previous valid data is intact and still verifies.
//! - `flows`: what succeeds.

mod failures;
mod flows;
mod harness;
