//! Approvals across jump hosts. The waiting run publishes its request
//! (`<prefix>/approvals/<id>/request`, with the plan hash, on a lease that
//! ends with the request); `remedy approve|deny` or `remedy serve` on any
//! jump host adds a vote (`…/votes/<user>`, once per user); the waiting run
//! watches the votes, counts each one in its own journal — approver list,
//! requester rule, quorum and expiry are checked where the request lives —
//! and answers each voter (`…/results/<user>`).

use remedy_etcd::etcd_client::{EventType, GetOptions, PutOptions, WatchOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::client::{create_if_absent, Coordinator};
use crate::error::CoordinationError;

/// A request as published: the journal's request (JSON) and where it waits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedRequest {
    pub jump_host: String,
    pub request: serde_json::Value,
}

/// A vote cast on another jump host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteVote {
    /// Who counts as voting (the identity after `--as` / the chat mapping).
    pub user: String,
    /// Who cast it, as that jump host journals it.
    pub actor: String,
    pub approve: bool,
    pub comment: Option<String>,
    /// "cli", "slack", "webhook", …
    pub channel: String,
    pub jump_host: String,
    /// The plan the voter saw: a vote for another plan is not counted.
    pub plan_hash: String,
}

/// What the waiting run made of a vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResult {
    pub counted: bool,
    pub message: String,
}

impl Coordinator {
    fn approval_key(&self, request_id: &str, rest: &str) -> String {
        self.key(&format!("approvals/{request_id}/{rest}"))
    }

    /// Publishes a request for `ttl_secs`; returns the revision to watch
    /// votes from.
    pub async fn publish_request(
        &self,
        request_id: &str,
        request: serde_json::Value,
        ttl_secs: i64,
    ) -> Result<i64, CoordinationError> {
        let mut client = self.client.clone();
        let lease = self
            .call(
                "granting an approval request's lease",
                client.lease_grant(ttl_secs.max(10), None),
            )
            .await?
            .id();
        let value = serde_json::to_string(&PublishedRequest {
            jump_host: self.config.jump_host.clone(),
            request,
        })
        .unwrap_or_default();
        let mut kv = self.client.clone();
        let resp = self
            .call(
                "publishing an approval request",
                kv.put(
                    self.approval_key(request_id, "request"),
                    value,
                    Some(PutOptions::new().with_lease(lease)),
                ),
            )
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    /// Takes a decided request off the list (its votes and answers stay
    /// until its lease ends, for voters still waiting for theirs).
    pub async fn withdraw_request(&self, request_id: &str) -> Result<(), CoordinationError> {
        let mut kv = self.client.clone();
        self.call(
            "withdrawing an approval request",
            kv.delete(self.approval_key(request_id, "request"), None),
        )
        .await
        .map(|_| ())
    }

    /// Every request published by any jump host and not yet decided.
    pub async fn published_requests(&self) -> Result<Vec<PublishedRequest>, CoordinationError> {
        let mut kv = self.client.clone();
        let resp = self
            .call(
                "listing approval requests",
                kv.get(
                    self.key("approvals/"),
                    Some(GetOptions::new().with_prefix()),
                ),
            )
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .filter(|kv| kv.key().ends_with(b"/request"))
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect())
    }

    /// Casts a vote on a published request (once per user; on the
    /// request's lease, so it ends with it). False: this user already voted.
    pub async fn cast_vote(
        &self,
        request_id: &str,
        vote: &RemoteVote,
    ) -> Result<bool, CoordinationError> {
        let request_key = self.approval_key(request_id, "request");
        let mut kv = self.client.clone();
        let lease = self
            .call("reading an approval request", kv.get(request_key.as_str(), None))
            .await?
            .kvs()
            .first()
            .map(|kv| kv.lease())
            .ok_or_else(|| CoordinationError::Operation {
                endpoints: self.config.etcd.endpoints.join(", "),
                op: "casting a vote",
                detail: format!("request {request_id} is no longer published (decided, expired or its run ended)"),
            })?;
        let key = self.approval_key(request_id, &format!("votes/{}", vote.user));
        let txn = create_if_absent(
            &key,
            serde_json::to_string(vote).unwrap_or_default(),
            Some(lease),
        );
        let mut kv = self.client.clone();
        Ok(self.call("casting a vote", kv.txn(txn)).await?.succeeded())
    }

    /// The waiting run's answer to `user`'s vote, once it has one.
    pub async fn vote_result(
        &self,
        request_id: &str,
        user: &str,
    ) -> Result<Option<VoteResult>, CoordinationError> {
        let mut kv = self.client.clone();
        let resp = self
            .call(
                "reading a vote's result",
                kv.get(
                    self.approval_key(request_id, &format!("results/{user}")),
                    None,
                ),
            )
            .await?;
        Ok(resp
            .kvs()
            .first()
            .and_then(|kv| serde_json::from_slice(kv.value()).ok()))
    }

    /// Answers a voter (on the request's lease when it still has one).
    pub async fn record_vote_result(
        &self,
        request_id: &str,
        user: &str,
        result: &VoteResult,
    ) -> Result<(), CoordinationError> {
        let mut kv = self.client.clone();
        let lease = self
            .call(
                "reading an approval request",
                kv.get(self.approval_key(request_id, "request"), None),
            )
            .await?
            .kvs()
            .first()
            .map(|kv| kv.lease())
            .unwrap_or(0);
        let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let mut kv = self.client.clone();
        self.call(
            "answering a vote",
            kv.put(
                self.approval_key(request_id, &format!("results/{user}")),
                serde_json::to_string(result).unwrap_or_default(),
                options,
            ),
        )
        .await
        .map(|_| ())
    }

    /// The votes on a request from `revision` on, as they come (a watch;
    /// the channel closes when the watch ends).
    pub async fn watch_votes(
        &self,
        request_id: &str,
        revision: i64,
    ) -> Result<mpsc::Receiver<RemoteVote>, CoordinationError> {
        let prefix = self.approval_key(request_id, "votes/");
        let mut client = self.client.clone();
        let mut stream = self
            .call(
                "watching votes",
                client.watch(
                    prefix.as_str(),
                    Some(
                        WatchOptions::new()
                            .with_prefix()
                            .with_start_revision(revision),
                    ),
                ),
            )
            .await?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok(Some(resp)) = stream.message().await {
                for event in resp.events() {
                    if event.event_type() != EventType::Put {
                        continue;
                    }
                    let Some(vote) = event
                        .kv()
                        .and_then(|kv| serde_json::from_slice::<RemoteVote>(kv.value()).ok())
                    else {
                        continue;
                    };
                    if tx.send(vote).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}
