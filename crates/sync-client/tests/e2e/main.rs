//! End-to-end tests of the Sync client against a real token server, identity provider and
//! storage node, all in this process, over real sockets (see `stack`).

mod engines;
mod faults;
mod local;
mod stack;
mod tiers;
