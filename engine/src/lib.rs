//! Online scoring path of riskgate.
//!
//! A login goes through [`request`] (validation), [`geo`] and [`iplists`] (enrichment),
//! [`store`] and [`profile`] (history), [`signals`], the [`model`] (the rules file's weights
//! or a trained artifact from `riskgate-models`), and [`rules`], all driven by
//! [`engine::Engine`]. [`http`] and [`server`] put it behind the HTTP API, and [`reload`]
//! swaps in the rules and the model when their files change; [`replay`] streams recorded
//! logins through it, and [`simulate`] generates labelled login histories to replay, train
//! and evaluate with.

pub mod config;
pub mod engine;
pub mod error;
pub mod geo;
pub mod http;
pub mod iplists;
pub mod metrics;
pub mod model;
pub mod profile;
pub mod reload;
pub mod replay;
pub mod request;
pub mod rules;
pub mod server;
pub mod signals;
pub mod simulate;
pub mod store;
