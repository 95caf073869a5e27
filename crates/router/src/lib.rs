//! Tern's routing: which upstream gets a message, how it is adapted to it,
//! and what its answers mean: the canonical error vocabulary, vendor
//! profiles, the routing table, strategies and circuit breakers.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
pub mod adapt;
pub mod breaker;
pub mod canonical;
pub mod engine;
pub mod profile;
pub mod profiles;
pub mod receipt;
pub mod strategy;
pub mod table;
pub mod upstream;

pub use canonical::{Canonical, Class, FinalState, Reason, Scope};
pub use profile::{Profile, ProfileError};
pub use profiles::ProfileSet;
