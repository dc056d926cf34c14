#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! proxy-injector: a mutating admission webhook that adds a Linkerd-compatible proxy sidecar
//! to pods. Pure logic (`decision`, `patch`, `overrides`, `view`) is kept apart from I/O
//! (`server`, `namespaces`).

pub mod admission;
pub mod certs;
pub mod check;
pub mod config;
pub mod containers;
pub mod decision;
pub mod events;
pub mod explain;
pub mod limits;
pub mod linkerd_config;
pub mod load;
pub mod logevery;
pub mod mesh;
pub mod metrics;
pub mod namespaces;
pub mod netpol;
pub mod offline;
pub mod overrides;
pub mod patch;
pub mod podsecurity;
pub mod policies;
pub mod prune;
pub mod quota;
pub mod quote;
pub mod release;
pub mod server;
pub mod triage;
pub mod uninject;
pub mod values;
pub mod view;
pub mod warn;
pub mod warnings;
pub mod workload;
