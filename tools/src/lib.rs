#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! The benchmark kit of proxy-injector (not shipped): synthetic AdmissionReviews (`corpus`), the
//! constant answer of the floor server (`floor`), and the `loadgen` and `floor` binaries that
//! `make bench` runs. The shipping crate knows nothing about them; the floor reuses its server
//! through [`proxy_injector::server::serve_with_inject`].

pub mod corpus;
pub mod floor;
pub mod procs;
