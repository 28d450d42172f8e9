//! Parquet encoding of snapshot and compare tables, and reading back the
//! key-value metadata of a file's footer (where a snapshot's manifest is
//! embedded).

use std::sync::LazyLock;

use bytes::Bytes;
use polars::prelude::*;
use polars_core::runtime::THREAD_POOL;
use polars_core::utils::arrow::array::{Array, DictionaryArray, PrimitiveArray, Utf8ViewArray};
use polars_core::utils::arrow::datatypes::IntegerType;
use polars_parquet::write::{
    CompressedPage, CompressionOptions, Encoding, ParquetType, Version, WriteOptions, ZstdLevel, array_to_columns,
    compress,
};
use rayon::prelude::*;

use crate::error::{Context, Result, SnapshotError};
use crate::storage::Store;

/// The threads that encode snapshots: as many as polars' pool has, but
/// their own, so that a backfill's commit of one cycle and the evaluation of
/// the next (on polars' pool) share the cores instead of queueing behind
/// each other's tasks.
static ENCODERS: LazyLock<rayon::ThreadPool> = LazyLock::new(|| {
    rayon::ThreadPoolBuilder::new()
        .num_threads(THREAD_POOL.current_num_threads())
        .thread_name(|i| format!("quadrant-encode-{i}"))
        .build()
        .expect("a thread pool")
});

/// Encodes a frame as Parquet: zstd at level 1 (a third less time than
/// polars' default level 3, for 8% more bytes), row groups of polars' default
/// size, each column's pages encoded and compressed in parallel.
///
/// polars 0.55's `ParquetWriter` encodes and compresses pages lazily, as its
/// file writer pulls them, so on one thread; for a snapshot of 40-odd
/// columns that was a fifth of a run. Here the same encoder and compressor
/// run per column on [`ENCODERS`] and the file writer only lays the finished
/// pages out.
pub fn parquet_bytes(frame: &mut DataFrame, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    const ROW_GROUP_ROWS: usize = 512 * 512;
    let level = ZstdLevel::try_new(1).expect("1 is a zstd level");
    let options = WriteOptions {
        statistics: StatisticsOptions::default(),
        compression: CompressionOptions::Zstd(Some(level)),
        version: Version::V1,
        data_page_size: None,
    };
    let encodings = get_encodings(&frame.schema().to_arrow(CompatLevel::newest()));
    // Room for the whole file from the start, so that the buffer is not
    // moved (and fresh pages touched) again and again as it fills, on the
    // one thread that lays the pages out: the file is no larger than the
    // frame in memory (a plain Parquet value takes no more room than its
    // Arrow slot, and zstd barely grows a page it cannot shrink), and room
    // never written to is address space, not memory. One cycle's file was
    // laid out in 3-16 ms instead of 32-38 ms.
    let mut buf = Vec::with_capacity(frame.estimated_size() + (1 << 20));
    let key_values = (!metadata.is_empty())
        .then(|| KeyValueMetadata::from_static(metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()));
    let mut writer = ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Zstd(Some(level)))
        .with_key_value_metadata(key_values)
        .batched(frame.schema())
        .ctx(|| "cannot encode Parquet".into())?;
    let fields = writer.parquet_schema().fields().to_vec();
    frame.rechunk_mut_par();
    for offset in (0..frame.height()).step_by(ROW_GROUP_ROWS) {
        let part = frame.slice(offset as i64, ROW_GROUP_ROWS);
        for batch in part.iter_chunks(CompatLevel::newest(), false) {
            let columns = ENCODERS
                .install(|| {
                    batch
                        .columns()
                        .par_iter()
                        .zip(&fields)
                        .zip(encodings.as_slice())
                        .map(|((array, field), encoding)| encode_column(array, field, encoding, options))
                        .collect::<PolarsResult<Vec<_>>>()
                })
                .ctx(|| "cannot encode Parquet".into())?;
            let leaves: Vec<Vec<CompressedPage>> = columns.into_iter().flatten().collect();
            writer
                .write_row_group(batch.height() as u64, &leaves)
                .ctx(|| "cannot encode Parquet".into())?;
        }
    }
    writer.finish().ctx(|| "cannot encode Parquet".into())?;
    drop(writer);
    Ok(buf)
}

/// The compressed pages of one column, per leaf (one for a flat column).
fn encode_column(
    array: &ArrayRef,
    field: &ParquetType,
    encoding: &[Encoding],
    options: WriteOptions,
) -> PolarsResult<Vec<Vec<CompressedPage>>> {
    let dictionary = (encoding == [Encoding::RleDictionary])
        .then(|| array.as_any().downcast_ref::<Utf8ViewArray>())
        .flatten()
        .and_then(view_dictionary);
    let array = match &dictionary {
        Some(d) => d as &dyn Array,
        None => array.as_ref(),
    };
    array_to_columns(array, field.clone(), options, encoding)?
        .into_iter()
        .map(|pages| {
            pages
                .map(|page| Ok(compress(page?, Vec::new(), options.compression)?))
                .collect()
        })
        .collect()
}

/// A string column of few distinct values (labels, rule names, `_since`
/// cycles, an industry) as a dictionary, built in one pass: a string of up
/// to 12 bytes is keyed by its 16-byte view, which holds it whole; a longer
/// one by its bytes. `None` when the distinct values pass an eighth of the
/// rows: polars' encoder then decides as before (by the strings' estimated
/// cardinality).
fn view_dictionary(array: &Utf8ViewArray) -> Option<DictionaryArray<u32>> {
    let len = array.len();
    let most = (len / 8).max(64);
    let mut short: PlHashMap<u128, u32> = PlHashMap::default();
    let mut long: PlHashMap<&str, u32> = PlHashMap::default();
    let mut firsts: Vec<usize> = Vec::new();
    let mut keys: Vec<u32> = Vec::with_capacity(len);
    let valid = |i: usize| array.validity().is_none_or(|v| v.get_bit(i));
    for (i, view) in array.views().iter().enumerate() {
        if !valid(i) {
            keys.push(0);
            continue;
        }
        let next = firsts.len() as u32;
        let key = if view.is_inline() {
            *short.entry(view.as_u128()).or_insert(next)
        } else {
            *long.entry(array.value(i)).or_insert(next)
        };
        if key == next {
            if firsts.len() == most {
                return None;
            }
            firsts.push(i);
        }
        keys.push(key);
    }
    let values = Utf8ViewArray::from_slice_values(firsts.iter().map(|&i| array.value(i)).collect::<Vec<_>>());
    let keys = PrimitiveArray::new(ArrowDataType::UInt32, keys.into(), array.validity().cloned());
    let dtype = ArrowDataType::Dictionary(IntegerType::UInt32, Box::new(array.dtype().clone()), false);
    DictionaryArray::try_new(dtype, keys, values.boxed()).ok()
}

/// The value of one key of a stored Parquet file's footer metadata, and the
/// file's size; `None` when the file does not exist.
pub fn footer_value(
    store: &Store,
    path: &object_store::path::Path,
    key: &str,
) -> Result<Option<(Option<String>, u64)>> {
    // Enough for the footer of a snapshot with its manifest in one request;
    // a larger footer takes a second one.
    const TAIL: u64 = 256 * 1024;
    let Some(meta) = store.head(path)? else {
        return Ok(None);
    };
    let size = meta.size;
    let uri = || store.uri_of(path);
    let not_parquet = || SnapshotError::NotParquet { uri: uri() };
    if size < 12 {
        return Err(not_parquet().into());
    }
    let mut tail = store.get_range(path, size.saturating_sub(TAIL)..size)?;
    let footer_len = u32::from_le_bytes(tail[tail.len() - 8..tail.len() - 4].try_into().expect("4 bytes")) as u64;
    if &tail[tail.len() - 4..] != b"PAR1" || footer_len + 8 > size {
        return Err(not_parquet().into());
    }
    if footer_len + 8 > tail.len() as u64 {
        tail = store.get_range(path, size - footer_len - 8..size)?;
    }
    let metadata =
        polars_parquet::parquet::read::read_metadata(&mut std::io::Cursor::new(tail.as_ref())).map_err(|e| {
            SnapshotError::Footer {
                uri: uri(),
                cause: e.to_string(),
            }
        })?;
    let value = metadata
        .key_value_metadata()
        .iter()
        .flatten()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone());
    Ok(Some((value, size)))
}

/// Encodes a frame and puts it as one object that appears whole or not at
/// all; returns its size.
pub fn put_parquet(store: &Store, rel: &str, frame: &mut DataFrame, create_only: bool) -> Result<Option<u64>> {
    let start = std::time::Instant::now();
    let bytes = Bytes::from(parquet_bytes(frame, &[])?);
    let encoded = start.elapsed().as_secs_f64();
    let size = bytes.len() as u64;
    if !store.put(&store.path(rel), bytes, create_only)? {
        return Ok(None);
    }
    tracing::debug!(
        file = rel,
        bytes = size,
        encode_seconds = encoded,
        put_seconds = start.elapsed().as_secs_f64() - encoded,
        "wrote"
    );
    Ok(Some(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes, reads back and compares; returns the number of row groups.
    fn round_trip(frame: &DataFrame) -> usize {
        let bytes = parquet_bytes(&mut frame.clone(), &[]).unwrap();
        let mut reader = ParquetReader::new(std::io::Cursor::new(bytes));
        let row_groups = reader.get_metadata().unwrap().row_groups.len();
        assert!(reader.finish().unwrap().equals_missing(frame));
        row_groups
    }

    #[test]
    fn the_parallel_encoder_writes_what_polars_reads_back() {
        // Three row groups, the last one partial; nulls, strings long and
        // short, dates, a scalar column.
        let n = 2 * 512 * 512 + 1234;
        let mut frame = df! {
            "account_id" => (0..n).map(|i| format!("A{i:07}")).collect::<Vec<_>>(),
            "name" => (0..n).map(|i| format!("a longer account name {}", i % 977)).collect::<Vec<_>>(),
            "arr" => (0..n).map(|i| (i % 5 != 0).then_some(i as f64 * 1.5)).collect::<Vec<_>>(),
            "seats" => (0..n).map(|i| i as i64 % 300).collect::<Vec<_>>(),
            "since" => (0..n).map(|i| i as i32 % 20_000).collect::<Vec<_>>(),
            "label" => (0..n).map(|i| (i % 7 != 0).then_some(["Grow", "Protect", "Re-evaluate"][i % 3])).collect::<Vec<_>>(),
        }
        .unwrap()
        .lazy()
        .with_columns([
            col("since").cast(DataType::Date),
            when(col("seats").lt(lit(100)))
                .then(lit("Large Opportunity"))
                .when(col("seats").lt(lit(200)))
                .then(lit(NULL).cast(DataType::String))
                .otherwise(lit("Small and medium business"))
                .alias("long_label"),
        ])
        .collect()
        .unwrap();
        let run_id = Scalar::new(DataType::String, AnyValue::StringOwned("run-1".into()));
        frame
            .with_column(Column::new_scalar("run_id".into(), run_id, n))
            .unwrap();
        assert_eq!(round_trip(&frame), 3);
    }

    /// The distinct values `view_dictionary` finds in a column of a frame,
    /// or `None` when it leaves the column to polars' encoder.
    fn dictionary_of(frame: &DataFrame, column: &str) -> Option<Vec<String>> {
        let column = frame.column(column).unwrap().as_materialized_series().rechunk();
        let chunk = column.str().unwrap().downcast_iter().next().unwrap().clone();
        let dictionary = view_dictionary(&chunk)?;
        let values = dictionary.values().as_any().downcast_ref::<Utf8ViewArray>().unwrap();
        Some(values.values_iter().map(str::to_string).collect())
    }

    #[test]
    fn labels_are_a_dictionary_of_their_distinct_values_and_ids_are_not() {
        // Labels as rules make them: literals of a when/then chain, some
        // longer than a view holds, with nulls; and ids all distinct.
        let n = 100_000;
        let frame = df! {
            "seats" => (0..n).map(|i| i % 300).collect::<Vec<_>>(),
            "account_id" => (0..n).map(|i| format!("A{i:07}")).collect::<Vec<_>>(),
        }
        .unwrap()
        .lazy()
        .with_column(
            when(col("seats").lt(lit(100)))
                .then(lit("Large Opportunity"))
                .when(col("seats").lt(lit(200)))
                .then(lit(NULL).cast(DataType::String))
                .when(col("seats").lt(lit(250)))
                .then(lit("SMB"))
                .otherwise(lit("Small and medium business"))
                .alias("label"),
        )
        .collect()
        .unwrap();
        assert_eq!(
            dictionary_of(&frame, "label").unwrap(),
            ["Large Opportunity", "SMB", "Small and medium business"]
        );
        assert_eq!(dictionary_of(&frame, "account_id"), None);
        assert_eq!(round_trip(&frame), 1);
    }

    #[test]
    fn an_empty_frame_is_a_valid_file() {
        let frame = df! { "account_id" => Vec::<String>::new(), "arr" => Vec::<f64>::new() }.unwrap();
        assert_eq!(round_trip(&frame), 0);
    }
}
