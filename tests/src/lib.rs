//! Shared helpers for end-to-end tests.

pub mod bins;
pub mod differential;
pub mod external;
pub mod observability_support;
pub mod router_support;
