//! The Remote Settings server over a real socket, in one test binary: the Kinto-compatible
//! API (`kinto`) and the review workflow with its content signer (`workflow`).

mod kinto;
mod workflow;
