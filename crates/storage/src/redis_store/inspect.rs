//! Read-only views of held receipts, for the receipt handler's
//! apply-then-take order and for operators (`tern status`, the admin API),
//! the same as the sled backend's.

use super::layout::{upstream_field, upstream_shard, SHARDS};
use super::RedisStore;
use crate::error::StoreError;
use crate::held;
use crate::record::UnmatchedReceipt;
use crate::upstream_id::forms;

impl RedisStore {
    /// The oldest receipt held for this upstream id, left in place (see
    /// [`crate::SledStore::peek_unmatched`]).
    pub async fn peek_unmatched(
        &self,
        upstream: &str,
        upstream_id: &str,
        any_base: bool,
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        for form in forms(upstream_id, any_base) {
            let raw: Option<Vec<u8>> = self
                .query(
                    redis::cmd("HGET")
                        .arg(self.layout.unmatched(upstream_shard(upstream, &form)))
                        .arg(upstream_field(upstream, &form)),
                )
                .await?;
            if let Some((first, _)) = raw.as_deref().map(held::first).transpose()?.flatten() {
                return Ok(Some(first));
            }
        }
        Ok(None)
    }

    /// Up to `limit` held receipts, left in place: shard by shard, oldest
    /// first within a shard.
    pub async fn held_receipts(&self, limit: usize) -> Result<Vec<UnmatchedReceipt>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..SHARDS {
            let want = limit.saturating_sub(out.len());
            if want == 0 {
                break;
            }
            let fields: Vec<Vec<u8>> = self
                .query(
                    redis::cmd("ZRANGE")
                        .arg(self.layout.unmatched_by_time(shard))
                        .arg(0)
                        .arg(want as i64 - 1),
                )
                .await?;
            if fields.is_empty() {
                continue;
            }
            let raws: Vec<Option<Vec<u8>>> = self
                .query(
                    redis::cmd("HMGET")
                        .arg(self.layout.unmatched(shard))
                        .arg(&fields),
                )
                .await?;
            for raw in raws.into_iter().flatten() {
                out.extend(held::all(&raw)?);
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}
