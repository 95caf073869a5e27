//! Tern's admin listener, read as an operator's tools read it.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::wait::{wait_for, POLL};

/// Tern's admin listener, read as an operator's tools read it.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub SocketAddr);

impl Admin {
    pub fn at(port: u16) -> Admin {
        Admin(([127, 0, 0, 1], port).into())
    }

    /// GETs `path` as JSON, retrying while the listener starts (5 s).
    pub async fn get(&self, path: &str) -> Value {
        let mut last = None;
        for _ in 0..100 {
            match tern::admin::get_json(self.0, path).await {
                Ok(value) => return value,
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("admin {path} never answered: {last:?}");
    }

    /// The body of `path` as text (`/metrics`).
    pub async fn text(&self, path: &str) -> String {
        tern::admin::get(self.0, path)
            .await
            .expect("admin answers")
            .text()
    }

    /// Polls `path` until `check` holds on its JSON (see [`wait_for`]);
    /// returns that JSON. The daemon records what it did just after doing
    /// it, so a test reads the admin API this way, not once.
    pub async fn until(
        &self,
        path: &str,
        within: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let check = &check;
        wait_for(what, within, move || async move {
            let value = self.get(path).await;
            check(&value).then_some(value)
        })
        .await
    }
}
