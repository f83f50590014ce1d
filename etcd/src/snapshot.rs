//! Checking etcd snapshots: the streamed one and a file on disk.
//!
//! etcd (3.4 and 3.5 alike) streams the bbolt database in 32 KiB chunks, each
//! with `remaining_bytes` left after it (so the first chunk's length plus its
//! `remaining_bytes` is the database size), then one last message holding the
//! 32-byte SHA-256 of everything before it. `etcdctl
//! snapshot save` writes all of it, digest included, and `snapshot restore`
//! checks that digest when the file size is 32 more than a multiple of 512.
//! We keep the same file layout, so our snapshots restore with etcdctl/etcdutl,
//! and refuse a stream or file whose digest or size is wrong:
//! `etcdctl snapshot status` reads a truncated file without complaint as long
//! as the pages it looks at survived (seen with etcd 3.4.23).

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::error::EtcdError;

/// Length of the digest etcd appends to a snapshot.
const DIGEST_LEN: usize = 32;

/// A verified snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// Bytes written, database plus the 32-byte digest (the file's size).
    pub bytes: u64,
    /// SHA-256 of all bytes written, hex: what `sha256sum FILE` prints.
    pub sha256: String,
    /// Size of the database inside, `bytes - 32`.
    pub db_bytes: u64,
}

/// Why a snapshot is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotDefect {
    #[error("it is empty")]
    Empty,
    #[error("it has {bytes} bytes, too few to hold a database and its 32-byte digest")]
    TooShort { bytes: u64 },
    #[error(
        "etcd announced a {announced}-byte database but {received} bytes arrived; \
         the stream was cut short"
    )]
    SizeMismatch { announced: u64, received: u64 },
    #[error(
        "its size ({bytes} bytes) is not a multiple of 512 plus the 32-byte digest; \
         it was truncated or is not an etcd snapshot"
    )]
    NotAligned { bytes: u64 },
    #[error(
        "the SHA-256 etcd appended ({expected}) does not match the data ({actual}); \
         it is truncated or corrupt"
    )]
    DigestMismatch { expected: String, actual: String },
}

/// Hashes a snapshot as it passes, holding back the last 32 bytes (the
/// digest candidate) so that nothing has to be buffered.
#[derive(Default)]
pub(crate) struct SnapshotCheck {
    /// Over every byte: the file's hash.
    all: Sha256,
    /// Over every byte but the last 32: must equal them at the end.
    db: Sha256,
    tail: Vec<u8>,
    bytes: u64,
    /// The database size etcd announced, if it did.
    pub(crate) announced_db_bytes: Option<u64>,
}

impl SnapshotCheck {
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.all.update(chunk);
        self.bytes += chunk.len() as u64;
        if chunk.len() >= DIGEST_LEN {
            self.db.update(&self.tail);
            let (body, last) = chunk.split_at(chunk.len() - DIGEST_LEN);
            self.db.update(body);
            self.tail.clear();
            self.tail.extend_from_slice(last);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(DIGEST_LEN);
            self.db.update(&self.tail[..excess]);
            self.tail.drain(..excess);
        }
    }

    pub(crate) fn finish(self) -> Result<SnapshotInfo, SnapshotDefect> {
        let bytes = self.bytes;
        if bytes == 0 {
            return Err(SnapshotDefect::Empty);
        }
        if bytes <= DIGEST_LEN as u64 {
            return Err(SnapshotDefect::TooShort { bytes });
        }
        let db_bytes = bytes - DIGEST_LEN as u64;
        if let Some(announced) = self.announced_db_bytes {
            if announced != db_bytes {
                return Err(SnapshotDefect::SizeMismatch {
                    announced,
                    received: db_bytes,
                });
            }
        }
        if db_bytes % 512 != 0 {
            return Err(SnapshotDefect::NotAligned { bytes });
        }
        let actual = self.db.finalize();
        if actual.as_slice() != self.tail.as_slice() {
            return Err(SnapshotDefect::DigestMismatch {
                expected: hex::encode(&self.tail),
                actual: hex::encode(actual),
            });
        }
        Ok(SnapshotInfo {
            bytes,
            sha256: hex::encode(self.all.finalize()),
            db_bytes,
        })
    }
}

/// Verifies a snapshot file written by [`crate::Member::snapshot`] or by
/// `etcdctl snapshot save`: non-empty, aligned, and its appended SHA-256
/// matches the database before it.
pub async fn verify_snapshot_file(path: &Path) -> Result<SnapshotInfo, EtcdError> {
    let io_error = |source| EtcdError::ReadSnapshotFile {
        path: path.display().to_string(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io_error)?;
    let mut check = SnapshotCheck::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(io_error)?;
        if n == 0 {
            break;
        }
        check.update(&buf[..n]);
    }
    check.finish().map_err(|defect| EtcdError::SnapshotFile {
        path: path.display().to_string(),
        defect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_of(db: &[u8]) -> Vec<u8> {
        let mut out = db.to_vec();
        out.extend_from_slice(&Sha256::digest(db));
        out
    }

    fn check_in_chunks(data: &[u8], chunk: usize) -> Result<SnapshotInfo, SnapshotDefect> {
        let mut check = SnapshotCheck::default();
        for part in data.chunks(chunk) {
            check.update(part);
        }
        check.finish()
    }

    #[test]
    fn accepts_a_whole_snapshot_whatever_the_chunking() {
        let db: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let data = snapshot_of(&db);
        for chunk in [1, 7, 31, 32, 33, 1000, 5000] {
            let info = check_in_chunks(&data, chunk).unwrap();
            assert_eq!(info.bytes, 4128);
            assert_eq!(info.db_bytes, 4096);
            assert_eq!(info.sha256, hex::encode(Sha256::digest(&data)));
        }
    }

    #[test]
    fn refuses_empty_short_truncated_and_corrupt() {
        let db = vec![7u8; 8192];
        let data = snapshot_of(&db);
        assert_eq!(check_in_chunks(&[], 10), Err(SnapshotDefect::Empty));
        assert_eq!(
            check_in_chunks(&data[..20], 10),
            Err(SnapshotDefect::TooShort { bytes: 20 })
        );
        assert_eq!(
            check_in_chunks(&data[..5000], 100),
            Err(SnapshotDefect::NotAligned { bytes: 5000 })
        );
        // Cut on a page boundary: aligned, so only the digest catches it.
        let cut = &data[..4096 + 32];
        assert!(matches!(
            check_in_chunks(cut, 100),
            Err(SnapshotDefect::DigestMismatch { .. })
        ));
        let mut corrupt = data.clone();
        corrupt[100] ^= 1;
        assert!(matches!(
            check_in_chunks(&corrupt, 100),
            Err(SnapshotDefect::DigestMismatch { .. })
        ));
    }

    #[test]
    fn refuses_a_stream_shorter_than_announced() {
        let db = vec![1u8; 4096];
        let mut check = SnapshotCheck {
            announced_db_bytes: Some(8192),
            ..SnapshotCheck::default()
        };
        check.update(&snapshot_of(&db));
        assert_eq!(
            check.finish(),
            Err(SnapshotDefect::SizeMismatch {
                announced: 8192,
                received: 4096
            })
        );
    }
}
