//! sha256 of open files: the identity of a harvested binary.

use std::fs::File;
use std::os::fd::OwnedFd;

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorId, Result};

/// The lowercase hex sha256 of the whole content of `fd` (read from the
/// start, through a duplicate so the caller's offset is untouched).
pub fn sha256_fd(fd: &OwnedFd, shown: &str) -> Result<String> {
    let dup = fd.try_clone().map_err(|e| Error::io(ErrorId::Io, format!("cannot read {shown}"), e))?;
    let file = File::from(dup);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut offset = 0u64;
    loop {
        // pread-style: never depend on the shared file offset.
        let n = std::os::unix::fs::FileExt::read_at(&file, &mut buf, offset)
            .map_err(|e| Error::io(ErrorId::Io, format!("cannot read {shown}"), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
