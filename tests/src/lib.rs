//! Shared helpers for end-to-end tests.

pub mod bins;
pub mod external;
pub mod router_support;
