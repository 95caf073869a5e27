//! Tern's configuration: the TOML file as written ([`raw`]), compiled into
//! what the crates run with ([`Config`]). Compilation collects every error
//! with its file, line and column, so an operator fixes a file in one pass;
//! a file with any error is refused whole (it never falls back to defaults).

mod compile;
pub mod diff;
pub mod raw;

pub use compile::{
    Backend, CallbackHost, ClientAccount, Config, ConfigError, ConfigErrors, Listener, LogSettings,
    RedisSettings, Secret, UpstreamSpec, DEFAULT_ADMIN,
};
