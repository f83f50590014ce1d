//! The audit witness: each jump host publishes its journal's chain head
//! (`<prefix>/audit/<jump host>`) after every run. The journal alone cannot
//! show a tail cut off with its head row set to match; the published head,
//! kept outside the jump host, can (`remedy audit verify`).

use serde::{Deserialize, Serialize};

use crate::client::Coordinator;
use crate::error::CoordinationError;

/// A journal's chain head as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedHead {
    pub event_id: i64,
    pub hash: String,
    pub time_ms: i64,
}

impl Coordinator {
    fn head_key(&self, jump_host: &str) -> String {
        self.key(&format!("audit/{jump_host}"))
    }

    /// Publishes this jump host's head (replacing the one before).
    pub async fn publish_head(&self, head: &PublishedHead) -> Result<(), CoordinationError> {
        let mut kv = self.client.clone();
        let value = serde_json::to_string(head).unwrap_or_default();
        self.call(
            "publishing the journal's chain head",
            kv.put(self.head_key(&self.config.jump_host), value, None),
        )
        .await
        .map(|_| ())
    }

    /// The head this jump host published last, if any.
    pub async fn published_head(&self) -> Result<Option<PublishedHead>, CoordinationError> {
        let mut kv = self.client.clone();
        let resp = self
            .call(
                "reading the published chain head",
                kv.get(self.head_key(&self.config.jump_host), None),
            )
            .await?;
        Ok(resp
            .kvs()
            .first()
            .and_then(|kv| serde_json::from_slice(kv.value()).ok()))
    }
}
