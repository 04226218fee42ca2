//! Online scoring path of riskgate.

pub mod geo;
pub mod iplists;
pub mod replay;
pub mod rules;
