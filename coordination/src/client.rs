//! `Coordinator`: one client to the ops etcd (failing over between its
//! members), with a bound on every call so an ops etcd that hangs is an
//! error, not a hung run.

use std::future::Future;
use std::time::Duration;

use remedy_etcd::etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, Error as EtcdClientError, Identity,
    PutOptions, TlsOptions, Txn, TxnOp,
};

use crate::config::Coordination;
use crate::error::CoordinationError;

/// Connecting and each call (streams excepted) end after this long.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected client, its key prefix and who this jump host is.
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) client: Client,
    pub(crate) config: Coordination,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Reads the TLS material, connects and proves a member answers (a
    /// linearizable read, so it is one with a leader and quorum).
    pub async fn connect(config: &Coordination) -> Result<Coordinator, CoordinationError> {
        let read = |field: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| CoordinationError::File {
                field,
                path: path.to_path_buf(),
                source,
            })
        };
        let backend = &config.etcd;
        let ca = read("ca", &backend.ca)?;
        let cert = read("cert", &backend.cert)?;
        let key = read("key", &backend.key)?;
        // No domain name: each endpoint's certificate is checked against
        // the endpoint's own host (an address against the IP SANs).
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(cert, key));
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10))
            .with_require_leader(true);
        let unreachable = |detail: String| CoordinationError::Unreachable {
            endpoints: backend.endpoints.join(", "),
            detail,
        };
        let client = tokio::time::timeout(
            CALL_TIMEOUT,
            Client::connect(&backend.endpoints, Some(options)),
        )
        .await
        .map_err(|_| unreachable(format!("no member answered within {CALL_TIMEOUT:?}")))?
        .map_err(|e| unreachable(describe(&e)))?;
        let coordinator = Coordinator {
            client,
            config: config.clone(),
        };
        let mut kv = coordinator.client.clone();
        let probe = coordinator.key("probe");
        tokio::time::timeout(CALL_TIMEOUT, kv.get(probe, None))
            .await
            .map_err(|_| unreachable(format!("no member answered within {CALL_TIMEOUT:?}")))?
            .map_err(|e| unreachable(describe(&e)))?;
        Ok(coordinator)
    }

    /// The configuration this client was made from.
    pub fn config(&self) -> &Coordination {
        &self.config
    }

    /// `<prefix>/<rest>`.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.config.etcd.prefix)
    }

    /// Runs one call with the call timeout; its error says what was done.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, EtcdClientError>>,
    ) -> Result<T, CoordinationError> {
        let failed = |detail: String| CoordinationError::Operation {
            endpoints: self.config.etcd.endpoints.join(", "),
            op,
            detail,
        };
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Err(_) => Err(failed(format!("no answer within {CALL_TIMEOUT:?}"))),
            Ok(Err(e)) => Err(failed(describe(&e))),
            Ok(Ok(v)) => Ok(v),
        }
    }
}

/// A transaction that creates `key` only where it does not exist yet
/// (create revision 0), on `lease` when given: how a lock, a leadership, a
/// slot or a vote is taken once.
pub(crate) fn create_if_absent(key: &str, value: String, lease: Option<i64>) -> Txn {
    Txn::new()
        .when(vec![Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then(vec![TxnOp::put(
            key,
            value,
            lease.map(|l| PutOptions::new().with_lease(l)),
        )])
}

/// The error and its causes on one line (tonic hides the useful part — a
/// refused connection, a certificate problem — in the sources).
fn describe(err: &EtcdClientError) -> String {
    remedy_etcd::error_chain(err)
}
