//! A kakehashi node (being written; see issue 4).
#![forbid(unsafe_code)]

mod account;
pub mod config;
pub mod engine;
pub mod fault;
pub mod locks;
pub mod metrics;
pub mod node;
pub mod participant;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;

pub use account::AccountKind;
pub use engine::{Clock, SystemClock};
