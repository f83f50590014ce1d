//! [`Prior`]: a server as it was on one LB before a change — what undoing the
//! change puts back — and [`RuntimeApi::restore`], which does.

use crate::runtime_api::RuntimeApi;
use crate::{AdminState, HaproxyError, ServerState};
use serde::{Deserialize, Serialize};

/// A server on one LB before a step changed it: what undo puts back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prior {
    pub lb: String,
    pub backend: String,
    pub server: String,
    pub admin: AdminState,
    pub weight: u32,
    pub status: String,
}

impl Prior {
    /// `s` as found on the LB named `lb`.
    pub fn of(lb: &str, s: &ServerState) -> Prior {
        Prior {
            lb: lb.to_string(),
            backend: s.backend.clone(),
            server: s.server.clone(),
            admin: s.admin,
            weight: s.weight,
            status: s.status.clone(),
        }
    }

    /// By hand, what [`RuntimeApi::restore`] would have done.
    pub fn by_hand(&self) -> String {
        format!(
            "on {}: `set server {b}/{s} weight {}` and `set server {b}/{s} state {}`",
            self.lb,
            self.weight,
            self.admin,
            b = self.backend,
            s = self.server
        )
    }
}

impl RuntimeApi<'_> {
    /// Put one server back as `prior` says: weight, then admin state. What
    /// was done, in one line.
    pub async fn restore(&self, p: &Prior) -> Result<String, HaproxyError> {
        self.set_weight(&p.backend, &p.server, p.weight).await?;
        self.set_state(&p.backend, &p.server, p.admin).await?;
        Ok(format!(
            "{}: {}/{} back to {}, weight {}",
            p.lb, p.backend, p.server, p.admin, p.weight
        ))
    }
}
