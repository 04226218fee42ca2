//! Online scoring path of riskgate.

pub mod error;
pub mod geo;
pub mod iplists;
pub mod profile;
pub mod replay;
pub mod request;
pub mod rules;
pub mod store;
