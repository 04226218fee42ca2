//! Feature definitions and model inference shared by riskgate's online and offline paths.
//!
//! [`features`] defines the login feature vector once; [`linear`] scores it. Training code
//! sits behind the `train` feature so that the server build does not compile polars or linfa.

pub mod agent;
pub mod artifact;
pub mod features;
pub mod freeman;
pub mod keystroke;
pub mod linear;
#[cfg(feature = "train")]
pub mod train;
