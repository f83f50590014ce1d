//! remedy-testkit: what several crates' tests share — real servers started
//! for one test and stopped when dropped, even when the test fails
//! ([`sshd::TestSshd`], [`haproxy::TestHaproxy`]) and network namespaces
//! ([`netns::Netns`]), an HTTP receiver for what remedy sends
//! ([`http::Receiver`]), the `openssl` CLI as the independent check of
//! certificates and signatures ([`openssl`]), and polling until
//! something happens ([`poll::eventually`]).
//!
//! Only ever a dev-dependency. It must not depend on other remedy crates, so
//! any of them can use it.

pub mod haproxy;
pub mod http;
pub mod netns;
pub mod openssl;
pub mod poll;
pub mod sshd;
