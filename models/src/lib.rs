//! Feature definitions and model inference shared by riskgate's online and offline paths.

pub mod keystroke;
