//! A kakehashi node (being written; see issue 4).
#![forbid(unsafe_code)]

pub mod config;
pub mod engine;
pub mod fault;
pub mod instruction;
pub mod load;
pub mod locks;
pub mod metrics;
pub mod money;
pub mod node;
pub mod pair_audit;
pub mod participant;
pub mod quote;
pub mod reason;
pub mod receipt;
pub mod replay;
pub mod server;
pub mod service;
pub mod signed;
pub mod store;
pub mod tls;
