//! The usage pass read straight from the Parquet files, for every cycle of
//! a run at once.
//!
//! polars' group-by decodes each usage row's account id into a string and
//! hashes it. Here, where the files keep the ids dictionary-encoded (as
//! writers do for ids repeated within a row group), each value of a
//! dictionary is hashed once and each row only indexes dense accumulators;
//! ids stored plain are hashed once per row, into a table each thread keeps
//! of the ids it has met. The windows of every cycle asked for are folded
//! in the same pass, so a backfill reads the usage once. Row groups whose
//! dates lie outside every window are skipped by their statistics.
//!
//! Each row group is folded on its own, then merged into the totals in file
//! and row-group order: the sums of floating-point metrics are added in the
//! same order at any thread count, so the bytes of a snapshot do not depend
//! on it.
//!
//! It reads the columns as the files store them when they need no
//! conforming beyond widening: string account ids, `DATE` dates and integer
//! or floating-point metrics. Other files (timestamps to truncate, decimals,
//! integer ids, columns that come from Hive paths, files whose types
//! differ) go through polars' scan ([`super::aggregates::aggregate_usage`]),
//! which computes the same frame.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type};
use arrow_schema::{DataType as ArrowType, Field, Schema as ArrowSchema};
use chrono::NaiveDate;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;
use parquet::file::statistics::Statistics;
use polars::prelude::*;

use super::source::Scan;
use crate::error::{Result, SchemaError};
use crate::plan::Plan;
use crate::storage::Store;
use fetch::Fetched;
use fold::{Folds, Ids, Metric, Partial, Scratch, Totals, Values, epoch_days};

mod fetch;
mod fold;

/// Rows decoded at a time.
const BATCH_ROWS: usize = 64 * 1024;

/// The usage files, opened for reading their columns directly.
pub struct ParquetPass {
    dataset: String,
    account_id: String,
    date: String,
    /// The metrics the aggregates read, in the scan's order.
    metrics: Vec<Metric>,
    files: Vec<UsageFile>,
}

struct UsageFile {
    uri: String,
    at: Location,
    metadata: ArrowReaderMetadata,
    projection: ProjectionMask,
    /// The leaf columns read, for the byte ranges to fetch.
    leaves: Vec<usize>,
    /// The leaf column of the dates, for the row groups' statistics.
    date_leaf: usize,
}

enum Location {
    Local(std::path::PathBuf),
    /// In an object store: the object and its size.
    Remote(Store, Path, u64),
}

impl ParquetPass {
    /// Opens the files of a usage scan, reading each footer; `None` when a
    /// file needs polars' conforming (see the module's documentation).
    pub fn open(scan: &Scan) -> Result<Option<ParquetPass>> {
        let source = |name: &str| scan.sources.iter().find(|s| s.name == name);
        let (Some(account_id), Some(date)) = (source("account_id"), source("date")) else {
            return Ok(None);
        };
        let metrics: Vec<Metric> = scan
            .sources
            .iter()
            .filter(|s| s.name != "account_id" && s.name != "date")
            .map(|s| Metric {
                name: s.name.clone(),
                source: s.source.clone(),
                integer: s.conformed == DataType::Int64,
            })
            .collect();
        let mut files = Vec::with_capacity(scan.files.len());
        for file in &scan.files {
            // A column named in a Hive path comes from the path.
            let from_path = |column: &str| file.uri.contains(&format!("/{column}="));
            if scan.sources.iter().any(|s| from_path(&s.source)) {
                return Ok(None);
            }
            let unreadable = |cause: String| SchemaError::Unreadable {
                dataset: scan.dataset.to_string(),
                file: file.uri.clone(),
                cause,
            };
            let store = Store::open(&file.uri, scan.options())?;
            let (at, metadata) = if store.is_local() {
                let path = std::path::PathBuf::from(store.uri());
                let handle = File::open(&path).map_err(|e| unreadable(e.to_string()))?;
                let metadata = ArrowReaderMetadata::load(&handle, ArrowReaderOptions::new())
                    .map_err(|e| unreadable(e.to_string()))?;
                (Location::Local(path), metadata)
            } else {
                let path = store.path("");
                let footer = Fetched::footer(&scan.dataset.to_string(), &store, &path, file.size)?;
                let metadata = ArrowReaderMetadata::load(&footer, ArrowReaderOptions::new())
                    .map_err(|e| unreadable(e.to_string()))?;
                (Location::Remote(store, path, file.size), metadata)
            };

            let schema = metadata.schema();
            let field = |name: &str| schema.fields().iter().position(|f| f.name() == name);
            let (Some(id_index), Some(date_index)) = (field(&account_id.source), field(&date.source)) else {
                return Ok(None);
            };
            let string = |t: &ArrowType| matches!(t, ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View);
            let id_type = schema.field(id_index).data_type();
            let id_is_string = string(id_type) || matches!(id_type, ArrowType::Dictionary(_, v) if string(v));
            if !id_is_string || schema.field(date_index).data_type() != &ArrowType::Date32 {
                return Ok(None);
            }
            let mut roots = vec![id_index, date_index];
            for m in &metrics {
                let Some(i) = field(&m.source) else {
                    return Ok(None);
                };
                let fits = match schema.field(i).data_type() {
                    ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64 => m.integer,
                    ArrowType::UInt8 | ArrowType::UInt16 | ArrowType::UInt32 => m.integer,
                    ArrowType::Float32 | ArrowType::Float64 => !m.integer,
                    _ => false,
                };
                if !fits {
                    return Ok(None);
                }
                roots.push(i);
            }

            // Ask for the ids as a dictionary, Parquet's own, when every
            // column chunk of them has one; else as the strings they are.
            let id_leaf = metadata
                .parquet_schema()
                .columns()
                .iter()
                .position(|c| c.path().parts() == [account_id.source.as_str()]);
            let dictionary_encoded = id_leaf.is_some_and(|leaf| {
                metadata
                    .metadata()
                    .row_groups()
                    .iter()
                    .all(|g| g.column(leaf).dictionary_page_offset().is_some())
            });
            let metadata = if dictionary_encoded {
                let hinted: Vec<Field> = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| match i == id_index {
                        true => {
                            let dictionary =
                                ArrowType::Dictionary(Box::new(ArrowType::Int32), Box::new(ArrowType::Utf8));
                            Field::new(f.name(), dictionary, f.is_nullable())
                        }
                        false => f.as_ref().clone(),
                    })
                    .collect();
                let options = ArrowReaderOptions::new().with_schema(Arc::new(ArrowSchema::new(hinted)));
                ArrowReaderMetadata::try_new(metadata.metadata().clone(), options)
                    .map_err(|e| unreadable(e.to_string()))?
            } else {
                metadata
            };
            let parquet_schema = metadata.parquet_schema();
            let leaf = |name: &str| {
                parquet_schema
                    .columns()
                    .iter()
                    .position(|c| c.path().parts().len() == 1 && c.path().parts()[0] == name)
            };
            let mut leaves = Vec::new();
            for name in [&account_id.source, &date.source]
                .into_iter()
                .chain(metrics.iter().map(|m| &m.source))
            {
                let Some(i) = leaf(name) else {
                    return Ok(None);
                };
                leaves.push(i);
            }
            let date_leaf = leaves[1];
            let projection = ProjectionMask::roots(parquet_schema, roots);
            files.push(UsageFile {
                uri: file.uri.clone(),
                at,
                metadata,
                projection,
                leaves,
                date_leaf,
            });
        }
        Ok(Some(ParquetPass {
            dataset: scan.dataset.to_string(),
            account_id: account_id.source.clone(),
            date: date.source.clone(),
            metrics,
            files,
        }))
    }

    /// The grouped usage of each cycle evaluated at `as_ofs`, in order, as
    /// [`super::aggregates::aggregate_usage`] gives it for one.
    pub fn aggregate_cycles(&self, plan: &Plan, as_ofs: &[NaiveDate], drop_negative: bool) -> Result<Vec<DataFrame>> {
        let folds = Folds::new(plan, &self.metrics, as_ofs, drop_negative)?;
        let (after, through) = folds
            .cycles
            .iter()
            .filter_map(|f| f.range)
            .fold((i32::MAX, i32::MIN), |(a, t), (fa, ft)| (a.min(fa), t.max(ft)));
        let tasks = self.row_groups(after, through);
        let pool = &polars_core::runtime::THREAD_POOL;
        let threads = pool.current_num_threads().max(1);
        let ids = Ids::new(threads);
        // Each worker takes the next row group in file order and folds it;
        // the totals take the row groups in file order as they are folded
        // (so float sums add up in one order at any thread count), and no
        // worker waits for another. The first error in file order stops the
        // taking.
        let next = AtomicUsize::new(0);
        let merged = Mutex::new(InOrder {
            totals: Totals::new(&folds),
            folded: BTreeMap::new(),
            merged: 0,
            error: None,
        });
        pool.install(|| {
            rayon::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|_| {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&(f, g)) = tasks.get(i) else { break };
                            let partial = self.fold_row_group(&self.files[f], g, &folds, &ids);
                            let mut merged = merged.lock().unwrap_or_else(|e| e.into_inner());
                            if merged.add(i, partial).is_err() {
                                next.store(tasks.len(), Ordering::Relaxed);
                            }
                        }
                    })
                }
            })
        });
        let merged = merged.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = merged.error {
            return Err(e);
        }
        (0..folds.cycles.len())
            .map(|k| merged.totals.frame(k, plan, &ids))
            .collect()
    }

    /// The row groups, as (file, group), that may hold a date in
    /// `(after, through]` by their statistics.
    fn row_groups(&self, after: i32, through: i32) -> Vec<(usize, usize)> {
        let mut groups = Vec::new();
        for (f, file) in self.files.iter().enumerate() {
            for (g, group) in file.metadata.metadata().row_groups().iter().enumerate() {
                let dates = match group.column(file.date_leaf).statistics() {
                    Some(Statistics::Int32(s)) => s.min_opt().zip(s.max_opt()).map(|(lo, hi)| (*lo, *hi)),
                    _ => None,
                };
                if dates.is_none_or(|(lo, hi)| hi > after && lo <= through) {
                    groups.push((f, g));
                }
            }
        }
        groups
    }

    /// The first and the last usage date by the row groups' statistics, as
    /// days since the epoch: `None` when a row group with dates has none,
    /// `Some(None)` when no row has a date.
    pub fn span(&self) -> Option<Option<(i32, i32)>> {
        let mut span: Option<(i32, i32)> = None;
        for file in &self.files {
            for group in file.metadata.metadata().row_groups() {
                let Some(Statistics::Int32(s)) = group.column(file.date_leaf).statistics() else {
                    return None;
                };
                if s.null_count_opt() == Some(group.num_rows() as u64) {
                    continue;
                }
                let (Some(lo), Some(hi)) = (s.min_opt(), s.max_opt()) else {
                    return None;
                };
                if !s.min_is_exact() || !s.max_is_exact() {
                    return None;
                }
                span = Some(span.map_or((*lo, *hi), |(a, b)| (a.min(*lo), b.max(*hi))));
            }
        }
        Some(span)
    }

    /// What the pass of a cycle reads, for review.
    pub fn describe(&self, plan: &Plan, as_of: NaiveDate) -> String {
        let groups: usize = self.files.iter().map(|f| f.metadata.metadata().num_row_groups()).sum();
        let read = match plan.usage_range(as_of) {
            Some((after, through)) => self.row_groups(epoch_days(after), epoch_days(through)).len(),
            None => 0,
        };
        let columns: Vec<&str> = [self.account_id.as_str(), self.date.as_str()]
            .into_iter()
            .chain(self.metrics.iter().map(|m| m.source.as_str()))
            .collect();
        format!(
            "read directly from Parquet: {} file(s), {read} of {groups} row group(s) with dates in range by their statistics\n\
             columns: {} (account ids kept dictionary-encoded)\n\
             one pass folds every window of every cycle of the run, grouped by account",
            self.files.len(),
            columns.join(", ")
        )
    }

    fn fold_row_group(&self, file: &UsageFile, group: usize, folds: &Folds, ids: &Ids) -> Result<Partial> {
        let unreadable = |cause: String| -> crate::error::Error {
            SchemaError::Unreadable {
                dataset: self.dataset.clone(),
                file: file.uri.clone(),
                cause,
            }
            .into()
        };
        let mut partial = Partial::new(folds);
        let mut scratch = ids.scratch();
        let mut fold = |reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader| -> Result<()> {
            for batch in reader {
                let batch = batch.map_err(|e| unreadable(e.to_string()))?;
                self.add(&mut partial, (ids, &mut scratch), &batch, folds)
                    .map_err(unreadable)?;
            }
            Ok(())
        };
        fn build<R: ChunkReader + 'static>(
            reader: R,
            file: &UsageFile,
            group: usize,
        ) -> parquet::errors::Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
            ParquetRecordBatchReaderBuilder::new_with_metadata(reader, file.metadata.clone())
                .with_projection(file.projection.clone())
                .with_row_groups(vec![group])
                .with_batch_size(BATCH_ROWS)
                .build()
        }
        match &file.at {
            Location::Local(path) => {
                let handle = File::open(path).map_err(|e| unreadable(e.to_string()))?;
                fold(build(handle, file, group).map_err(|e| unreadable(e.to_string()))?)?;
            }
            Location::Remote(store, path, size) => {
                // The row group's column chunks that are read, fetched at once.
                let meta = file.metadata.metadata().row_group(group);
                let ranges: Vec<std::ops::Range<u64>> = file
                    .leaves
                    .iter()
                    .map(|&l| {
                        let (start, length) = meta.column(l).byte_range();
                        start..start + length
                    })
                    .collect();
                let bytes = store.get_ranges(path, &ranges)?;
                let fetched = Fetched {
                    len: *size,
                    ranges: ranges.iter().map(|r| r.start).zip(bytes).collect(),
                };
                fold(build(fetched, file, group).map_err(|e| unreadable(e.to_string()))?)?;
            }
        }
        partial.release(&mut scratch);
        Ok(partial)
    }

    /// Folds one batch of usage rows into every cycle's totals.
    fn add(
        &self,
        partial: &mut Partial,
        ids: (&Ids, &mut Scratch),
        batch: &RecordBatch,
        folds: &Folds,
    ) -> std::result::Result<(), String> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("column `{name}` is missing"))
        };
        let account_ids = column(&self.account_id)?;
        let dates = column(&self.date)?
            .as_primitive_opt::<Date32Type>()
            .ok_or("the dates are not read as dates")?;
        let mut values = Vec::with_capacity(self.metrics.len());
        for m in &self.metrics {
            let to = if m.integer {
                ArrowType::Int64
            } else {
                ArrowType::Float64
            };
            let cast = arrow_cast::cast(column(&m.source)?, &to).map_err(|e| e.to_string())?;
            values.push(match m.integer {
                true => Values::Int(cast.as_primitive::<Int64Type>().clone()),
                false => Values::Float(cast.as_primitive::<Float64Type>().clone()),
            });
        }
        partial.add_batch(ids, account_ids, dates, &values, folds)
    }
}

/// Row groups' totals merged in file order as they are folded.
struct InOrder {
    totals: Totals,
    /// Folded, waiting for a row group before them.
    folded: BTreeMap<usize, Result<Partial>>,
    /// How many row groups are merged.
    merged: usize,
    /// The first error in file order; nothing is merged after it.
    error: Option<crate::error::Error>,
}

impl InOrder {
    /// Takes row group `i`'s partial and merges what is next in order;
    /// `Err` once an error is reached.
    fn add(&mut self, i: usize, partial: Result<Partial>) -> std::result::Result<(), ()> {
        if self.error.is_some() {
            return Err(());
        }
        self.folded.insert(i, partial);
        while let Some(partial) = self.folded.remove(&self.merged) {
            self.merged += 1;
            match partial {
                Ok(partial) => self.totals.merge(partial),
                Err(e) => {
                    self.error = Some(e);
                    self.folded.clear();
                    return Err(());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::config::{Agg, Aggregate, Pipeline};

    /// Usage files with nulls everywhere, negative values, ids met again in
    /// later row groups and files, and several row groups per file.
    fn write_usage(dir: &std::path::Path, rng: &mut ChaCha8Rng, narrow_ints: bool) -> String {
        let usage = dir.join("usage");
        std::fs::create_dir_all(&usage).unwrap();
        let start = epoch_days(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        for f in 0..rng.random_range(1..=3) {
            let rows = rng.random_range(0..400);
            // Few accounts: ids stored dictionary-encoded; many: plain.
            let accounts = [25, 100_000][rng.random_range(0..2)];
            let mut ids = Vec::new();
            let mut dates = Vec::new();
            let mut ints = Vec::new();
            let mut floats = Vec::new();
            for _ in 0..rows {
                ids.push((!rng.random_bool(0.04)).then(|| format!("A{:03}", rng.random_range(0..accounts))));
                dates.push((!rng.random_bool(0.04)).then(|| start + rng.random_range(0..200)));
                ints.push((!rng.random_bool(0.1)).then(|| rng.random_range(-3i64..60)));
                // Quarters add up exactly in any order.
                floats.push((!rng.random_bool(0.1)).then(|| match rng.random_bool(0.05) {
                    true => f64::NAN,
                    false => rng.random_range(-8i32..120) as f64 / 4.0,
                }));
            }
            let ints = Column::new("events".into(), ints);
            let ints = match narrow_ints {
                true => ints.cast(&DataType::Int32).unwrap(),
                false => ints,
            };
            let mut frame = DataFrame::new_infer_height(vec![
                Column::new("account_id".into(), ids),
                Column::new("date".into(), dates).cast(&DataType::Date).unwrap(),
                ints,
                Column::new("minutes".into(), floats),
            ])
            .unwrap();
            // Exported by date, row groups hold few dates: some are skipped.
            if rng.random_bool(0.5) {
                frame = frame.sort(["date"], SortMultipleOptions::default()).unwrap();
            }
            let file = File::create(usage.join(format!("part-{f}.parquet"))).unwrap();
            ParquetWriter::new(file)
                .with_row_group_size(Some(rng.random_range(7..90)))
                .finish(&mut frame)
                .unwrap();
        }
        usage.to_string_lossy().into_owned()
    }

    /// The first value that differs, a NaN equal to a NaN.
    fn first_difference(got: &DataFrame, want: &DataFrame) -> Option<String> {
        if got.height() != want.height() {
            return Some(format!("{} rows, want {}", got.height(), want.height()));
        }
        for name in want.get_column_names() {
            let (g, w) = (got.column(name).unwrap(), want.column(name).unwrap());
            for i in 0..w.len() {
                let (a, b) = (g.get(i).unwrap(), w.get(i).unwrap());
                let same = match (&a, &b) {
                    (AnyValue::Float64(x), AnyValue::Float64(y)) => x == y || (x.is_nan() && y.is_nan()),
                    _ => a == b,
                };
                if !same {
                    let id = want.column("account_id").unwrap().get(i).unwrap();
                    return Some(format!("`{name}` of {id}: got {a}, want {b}"));
                }
            }
        }
        None
    }

    fn sorted(frame: DataFrame) -> DataFrame {
        frame
            .sort(["account_id"], SortMultipleOptions::default().with_nulls_last(true))
            .unwrap()
    }

    #[test]
    fn the_direct_pass_gives_what_polars_scan_gives_for_every_cycle() {
        let aggs = [
            Agg::Sum,
            Agg::Count,
            Agg::Mean,
            Agg::Min,
            Agg::Max,
            Agg::NUnique,
            Agg::Last,
            Agg::PerDay,
        ];
        let (mut dictionary_files, mut plain_files) = (0, 0);
        for seed in 0..40u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let dir = tempfile::tempdir().unwrap();
            let uri = write_usage(dir.path(), &mut rng, seed % 3 == 0);
            let mut pipeline = Pipeline::from_text(crate::config::DEFAULT_PIPELINE, "default.toml").unwrap();
            pipeline.aggregates = (0..rng.random_range(1..=7))
                .map(|i| Aggregate {
                    name: format!("a{i}"),
                    column: ["events", "minutes"][rng.random_range(0..2)].into(),
                    agg: aggs[rng.random_range(0..aggs.len())],
                    window_days: rng.random_range(1..80),
                    offset_days: [0, 0, rng.random_range(1..60)][rng.random_range(0..3)],
                    description: String::new(),
                })
                .collect();
            let plan = Plan::new(&pipeline);
            let scan = super::super::scan_usage(&pipeline, &uri).unwrap();
            let direct = ParquetPass::open(&scan)
                .unwrap()
                .expect("plain files are read directly");
            for file in &direct.files {
                match file
                    .metadata
                    .schema()
                    .field_with_name("account_id")
                    .unwrap()
                    .data_type()
                {
                    ArrowType::Dictionary(..) => dictionary_files += 1,
                    _ => plain_files += 1,
                }
            }
            // The first and last date by the statistics, as a scan finds them.
            let span = scan.span().ok().map(|s| (epoch_days(s.first), epoch_days(s.last)));
            assert_eq!(direct.span(), Some(span), "seed {seed}");
            let as_ofs: Vec<NaiveDate> = (0..rng.random_range(1..=4))
                .map(|_| {
                    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(rng.random_range(0..260))
                })
                .collect();
            let drop_negative = rng.random_bool(0.5);
            let frames = direct.aggregate_cycles(&plan, &as_ofs, drop_negative).unwrap();
            for (as_of, got) in as_ofs.iter().zip(frames) {
                let want = super::super::aggregates::aggregate_usage(scan.frame.clone(), &plan, *as_of, drop_negative)
                    .collect()
                    .unwrap();
                let (got, want) = (sorted(got), sorted(want));
                assert_eq!(got.schema(), want.schema(), "seed {seed}, as of {as_of}");
                if let Some(difference) = first_difference(&got, &want) {
                    panic!(
                        "seed {seed}, as of {as_of}, drop {drop_negative}: {difference}\n{:?}",
                        pipeline.aggregates
                    );
                }
            }
        }
        assert!(
            dictionary_files > 0 && plain_files > 0,
            "{dictionary_files} {plain_files}"
        );
    }

    #[test]
    fn usage_without_a_date_has_no_span_and_is_refused_as_a_scan_refuses_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usage")).unwrap();
        let mut frame = DataFrame::new_infer_height(vec![
            Column::new("account_id".into(), ["A1", "A2"]),
            Column::new("date".into(), [None::<i32>, None])
                .cast(&DataType::Date)
                .unwrap(),
            Column::new("events".into(), [1i64, 2]),
            Column::new("active_users".into(), [1.0f64, 2.0]),
        ])
        .unwrap();
        let file = File::create(dir.path().join("usage/part-0.parquet")).unwrap();
        ParquetWriter::new(file).finish(&mut frame).unwrap();
        let pipeline = Pipeline::from_text(crate::config::DEFAULT_PIPELINE, "default.toml").unwrap();
        let uri = dir.path().join("usage").to_string_lossy().into_owned();
        let scan = super::super::scan_usage(&pipeline, &uri).unwrap();
        let direct = ParquetPass::open(&scan).unwrap().unwrap();
        assert_eq!(direct.span(), Some(None));
        let pass = super::super::aggregates::LocalUsage::new(&scan).unwrap();
        use crate::engine::UsagePass;
        let (local, scanned) = (pass.span().unwrap_err(), scan.span().unwrap_err());
        assert_eq!(local.to_string(), scanned.to_string());
    }
}
