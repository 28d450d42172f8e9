//! The byte ranges of an object in a store that a read of Parquet needs,
//! fetched beforehand, for parquet's synchronous reader.

use bytes::{Buf, Bytes};
use object_store::path::Path;
use parquet::file::reader::{ChunkReader, Length};

use crate::error::{Result, SchemaError};
use crate::storage::Store;

/// The byte ranges of an object that a read needs, fetched beforehand.
pub(super) struct Fetched {
    pub(super) len: u64,
    pub(super) ranges: Vec<(u64, Bytes)>,
}

impl Fetched {
    /// An object's Parquet footer: its last 8 bytes give the length of the
    /// metadata before them.
    pub(super) fn footer(dataset: &str, store: &Store, path: &Path, size: u64) -> Result<Fetched> {
        let unreadable = |cause: &str| -> crate::error::Error {
            SchemaError::Unreadable {
                dataset: dataset.to_string(),
                file: store.uri().to_string(),
                cause: cause.to_string(),
            }
            .into()
        };
        if size < 12 {
            return Err(unreadable("too short for a Parquet file"));
        }
        let tail = store.get_range(path, size - 8..size)?;
        if tail.len() != 8 || &tail[4..] != b"PAR1" {
            return Err(unreadable("no Parquet footer"));
        }
        let length = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
        let start = size
            .checked_sub(8 + length)
            .ok_or_else(|| unreadable("the footer is longer than the file"))?;
        let metadata = store.get_range(path, start..size - 8)?;
        let mut footer = Vec::with_capacity(metadata.len() + 8);
        footer.extend_from_slice(&metadata);
        footer.extend_from_slice(&tail);
        Ok(Fetched {
            len: size,
            ranges: vec![(start, Bytes::from(footer))],
        })
    }

    fn slice(&self, start: u64, length: Option<usize>) -> parquet::errors::Result<Bytes> {
        for (at, bytes) in &self.ranges {
            let end = at + bytes.len() as u64;
            if *at <= start && start < end {
                let from = (start - at) as usize;
                let to = length.map_or(bytes.len(), |l| from + l);
                if to <= bytes.len() {
                    return Ok(bytes.slice(from..to));
                }
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "bytes {start}..{} were not fetched",
            length.map_or(String::new(), |l| (start + l as u64).to_string())
        )))
    }
}

impl Length for Fetched {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Fetched {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}
