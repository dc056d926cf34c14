#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! proxy-injector: a mutating admission webhook that adds a Linkerd-compatible proxy sidecar
//! to pods. Pure logic (`decision`, `patch`, `overrides`, `view`) is kept apart from I/O
//! (`server`, `namespaces`).

pub mod admission;
pub mod certs;
pub mod check;
pub mod config;
pub mod decision;
pub mod events;
pub mod metrics;
pub mod namespaces;
pub mod offline;
pub mod overrides;
pub mod patch;
pub mod server;
pub mod view;
pub mod warnings;
