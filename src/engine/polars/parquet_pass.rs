//! The usage pass read straight from the Parquet files, for every cycle of
//! a run at once.
//!
//! polars' group-by decodes each usage row's account id into a string and
//! hashes it; here the ids stay dictionary-encoded as Parquet stores them,
//! so an id is hashed once per row group that holds it, and each row only
//! indexes the accounts' dense accumulators. The windows of every cycle
//! asked for are folded in the same pass, so a backfill reads the usage
//! once. Row groups whose dates lie outside every window are skipped by
//! their statistics.
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

use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType as ArrowType, Field, Schema as ArrowSchema};
use bytes::{Buf, Bytes};
use chrono::NaiveDate;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use polars::prelude::*;
use rayon::prelude::*;

use super::aggregates::{NEGATIVE_ROWS, ROWS, per_day, window};
use super::source::Scan;
use crate::config::Agg;
use crate::error::{Context, Result, SchemaError};
use crate::plan::Plan;
use crate::storage::Store;

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

struct Metric {
    name: String,
    source: String,
    /// Conformed to integers (else to floating point).
    integer: bool,
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
                let footer = Fetched::footer(&store, &path, file.size)?;
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

            // Ask for the ids as a dictionary: Parquet's own, when the
            // column chunk is dictionary-encoded.
            let hinted: Vec<Field> = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| match i == id_index {
                    true => {
                        let dictionary = ArrowType::Dictionary(Box::new(ArrowType::Int32), Box::new(ArrowType::Utf8));
                        Field::new(f.name(), dictionary, f.is_nullable())
                    }
                    false => f.as_ref().clone(),
                })
                .collect();
            let options = ArrowReaderOptions::new().with_schema(Arc::new(ArrowSchema::new(hinted)));
            let metadata = ArrowReaderMetadata::try_new(metadata.metadata().clone(), options)
                .map_err(|e| unreadable(e.to_string()))?;
            if !matches!(metadata.schema().field(id_index).data_type(), ArrowType::Dictionary(..)) {
                return Ok(None);
            }
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
        let mut totals = Totals::new(&folds.cycles);
        // A few row groups per thread at a time, merged in order.
        for chunk in tasks.chunks(2 * pool.current_num_threads().max(1)) {
            let partials: Vec<Result<Totals>> = pool.install(|| {
                chunk
                    .par_iter()
                    .map(|&(f, g)| self.fold_row_group(&self.files[f], g, &folds))
                    .collect()
            });
            for partial in partials {
                totals.merge(partial?);
            }
        }
        (0..folds.cycles.len())
            .map(|k| {
                per_day(totals.frame(k, plan)?.lazy(), plan)
                    .collect()
                    .ctx(|| "cannot divide the per-day aggregates".into())
            })
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

    fn fold_row_group(&self, file: &UsageFile, group: usize, folds: &Folds) -> Result<Totals> {
        let unreadable = |cause: String| -> crate::error::Error {
            SchemaError::Unreadable {
                dataset: self.dataset.clone(),
                file: file.uri.clone(),
                cause,
            }
            .into()
        };
        let mut totals = Totals::new(&folds.cycles);
        let mut fold = |reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader| -> Result<()> {
            for batch in reader {
                let batch = batch.map_err(|e| unreadable(e.to_string()))?;
                self.add(&mut totals, &batch, folds).map_err(unreadable)?;
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
        Ok(totals)
    }

    /// Folds one batch of usage rows into every cycle's totals.
    fn add(&self, totals: &mut Totals, batch: &RecordBatch, folds: &Folds) -> std::result::Result<(), String> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("column `{name}` is missing"))
        };
        let ids = column(&self.account_id)?
            .as_dictionary_opt::<Int32Type>()
            .ok_or("the account ids are not read as a dictionary")?;
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
        let slots = totals.slots(ids)?;

        // A row is negative when a metric the aggregates read is below zero.
        let rows = batch.num_rows();
        let mut negative = vec![false; rows];
        for v in &values {
            match v {
                Values::Int(a) => flag_negative(&mut negative, a.values(), a.nulls(), |x| x < 0),
                Values::Float(a) => flag_negative(&mut negative, a.values(), a.nulls(), |x| x < 0.0),
            }
        }
        let days = dates.values();
        let dates_nulls = dates.nulls().filter(|n| n.null_count() > 0);
        let metric_nulls: Vec<_> = values
            .iter()
            .map(|v| match v {
                Values::Int(a) => a.nulls(),
                Values::Float(a) => a.nulls(),
            })
            .map(|n| n.filter(|n| n.null_count() > 0))
            .collect();

        // Consecutive rows of one account in one interval between window
        // bounds form a run: its values are summed up first, and the run is
        // added to each cycle and aggregate whose window holds the interval.
        let mut run: Option<Run> = None;
        // Windows of no days hold no date.
        let (first, last) = match folds.bounds.as_slice() {
            [first, .., last] => (*first, *last),
            _ => (0, 0),
        };
        let mut interval = 0;
        for i in 0..rows {
            let day = days[i];
            if day <= first || day > last || dates_nulls.is_some_and(|n| n.is_null(i)) {
                continue;
            }
            // Mostly the interval of the row before.
            if !(folds.bounds[interval] < day && day <= folds.bounds[interval + 1]) {
                interval = folds.interval(day);
            }
            let slot = slots[i];
            let current = match &mut run {
                Some(r) if r.slot == slot && r.interval == interval => r,
                _ => {
                    if let Some(done) = run.take() {
                        totals.add_run(&done, folds);
                    }
                    run.insert(Run::new(slot, interval, &values))
                }
            };
            current.rows += 1;
            if negative[i] {
                current.negative += 1;
                if folds.drop_negative {
                    continue;
                }
            }
            for ((stats, v), nulls) in current.metrics.iter_mut().zip(&values).zip(&metric_nulls) {
                if nulls.is_none_or(|n| n.is_valid(i)) {
                    match (stats, v) {
                        (RunStats::Int(s), Values::Int(a)) => s.add(days[i], a.value(i)),
                        (RunStats::Float(s), Values::Float(a)) => s.add(days[i], a.value(i)),
                        _ => unreachable!("a run's metrics are typed as the batch's"),
                    }
                }
            }
        }
        if let Some(done) = run {
            totals.add_run(&done, folds);
        }

        // `n_unique` does not add up from runs: its values go in one by one.
        if folds.distinct {
            for (fold, cycle) in folds.cycles.iter().zip(&mut totals.cycles) {
                for (acc, spec) in cycle.aggregates.iter_mut().zip(&fold.aggregates) {
                    if spec.agg != Agg::NUnique {
                        continue;
                    }
                    let (after, through) = spec.window;
                    let nulls = metric_nulls[spec.metric];
                    let kept = (0..rows).filter(|&i| {
                        days[i] > after
                            && days[i] <= through
                            && dates_nulls.is_none_or(|n| n.is_valid(i))
                            && nulls.is_none_or(|n| n.is_valid(i))
                            && !(folds.drop_negative && negative[i])
                    });
                    match (acc, &values[spec.metric]) {
                        (Acc::Int(Reduce::Distinct(seen)), Values::Int(v)) => {
                            kept.for_each(|i| {
                                seen[slots[i] as usize].insert(v.value(i).key());
                            });
                        }
                        (Acc::Float(Reduce::Distinct(seen)), Values::Float(v)) => {
                            kept.for_each(|i| {
                                seen[slots[i] as usize].insert(v.value(i).key());
                            });
                        }
                        _ => return Err("a metric changed type between batches".into()),
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a run of rows of one account in one interval adds up to, per metric.
struct Run {
    slot: u32,
    interval: usize,
    rows: i64,
    negative: i64,
    metrics: Vec<RunStats>,
}

impl Run {
    fn new(slot: u32, interval: usize, values: &[Values]) -> Run {
        Run {
            slot,
            interval,
            rows: 0,
            negative: 0,
            metrics: values
                .iter()
                .map(|v| match v {
                    Values::Int(_) => RunStats::Int(Stats::default()),
                    Values::Float(_) => RunStats::Float(Stats::default()),
                })
                .collect(),
        }
    }
}

enum RunStats {
    Int(Stats<i64>),
    Float(Stats<f64>),
}

/// The non-null values of a metric in a run (less the negative rows when
/// they are dropped).
#[derive(Default)]
struct Stats<T> {
    sum: T,
    /// The values added as floating point, for `mean`.
    float_sum: f64,
    count: i64,
    min: Option<T>,
    max: Option<T>,
    last: Option<(i32, T)>,
}

impl<T: Value> Stats<T> {
    fn add(&mut self, day: i32, v: T) {
        self.sum = self.sum.plus(v);
        self.float_sum += v.as_f64();
        self.count += 1;
        if self.min.is_none_or(|m| v < m) {
            self.min = Some(v);
        }
        if self.max.is_none_or(|m| v > m) {
            self.max = Some(v);
        }
        if later(Some((day, v)), self.last) {
            self.last = Some((day, v));
        }
    }
}

/// Marks the rows whose value is not null and `below` zero.
fn flag_negative<T: Copy>(
    negative: &mut [bool],
    values: &[T],
    nulls: Option<&arrow_buffer::NullBuffer>,
    below: impl Fn(T) -> bool,
) {
    match nulls.filter(|n| n.null_count() > 0) {
        None => negative.iter_mut().zip(values).for_each(|(n, &v)| *n |= below(v)),
        Some(nulls) => (0..values.len()).for_each(|i| negative[i] |= nulls.is_valid(i) && below(values[i])),
    }
}

fn epoch_days(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// What the cycles of a pass fold. Their windows' bounds cut the dates
/// into intervals `(bounds[j], bounds[j + 1]]`; each window and each
/// cycle's range is a span of consecutive intervals.
struct Folds {
    cycles: Vec<Fold>,
    bounds: Vec<i32>,
    drop_negative: bool,
    /// Whether some aggregate is an `n_unique`.
    distinct: bool,
}

impl Folds {
    fn new(plan: &Plan, metrics: &[Metric], as_ofs: &[NaiveDate], drop_negative: bool) -> Result<Folds> {
        let mut cycles: Vec<Fold> = as_ofs
            .iter()
            .map(|a| Fold::new(plan, metrics, *a))
            .collect::<Result<_>>()?;
        let mut bounds: Vec<i32> = cycles
            .iter()
            .flat_map(|c| c.range.into_iter().chain(c.aggregates.iter().map(|a| a.window)))
            .flat_map(|(after, through)| [after, through])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let span = |(after, through): (i32, i32)| {
            let at = |d: i32| bounds.binary_search(&d).expect("every bound is listed");
            (at(after), at(through))
        };
        for c in &mut cycles {
            c.intervals = c.range.map(span);
            for a in &mut c.aggregates {
                a.intervals = span(a.window);
            }
        }
        let distinct = plan.aggregates.iter().any(|a| a.agg == Agg::NUnique);
        Ok(Folds {
            cycles,
            bounds,
            drop_negative,
            distinct,
        })
    }

    /// The interval of a day inside the first and the last bound.
    fn interval(&self, day: i32) -> usize {
        self.bounds.partition_point(|&b| b < day) - 1
    }
}

/// What one cycle folds: its range of dates and each aggregate's window,
/// as days since the epoch, `(after, through]`, and as intervals.
struct Fold {
    range: Option<(i32, i32)>,
    intervals: Option<(usize, usize)>,
    aggregates: Vec<Spec>,
}

struct Spec {
    agg: Agg,
    /// Index into [`ParquetPass::metrics`].
    metric: usize,
    integer: bool,
    window: (i32, i32),
    intervals: (usize, usize),
}

impl Fold {
    fn new(plan: &Plan, metrics: &[Metric], as_of: NaiveDate) -> Result<Fold> {
        let days = |(a, t): (NaiveDate, NaiveDate)| (epoch_days(a), epoch_days(t));
        let aggregates = plan
            .aggregates
            .iter()
            .map(|a| {
                let metric = metrics.iter().position(|m| m.name == a.column).ok_or_else(|| {
                    crate::error::Error::config(format!(
                        "aggregate `{}` reads `{}`, which the usage scan lacks",
                        a.name, a.column
                    ))
                })?;
                Ok(Spec {
                    agg: a.agg,
                    metric,
                    integer: metrics[metric].integer,
                    window: days(window(a, as_of)),
                    intervals: (0, 0),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Fold {
            range: plan.usage_range(as_of).map(days),
            intervals: None,
            aggregates,
        })
    }
}

/// A metric's values in one batch, conformed as the scan conforms them.
enum Values {
    Int(arrow_array::Int64Array),
    Float(arrow_array::Float64Array),
}

/// The accumulators of the account ids met so far: one slot per id (and
/// one for the null id), each cycle's counters and aggregates indexed by
/// slot.
struct Totals {
    ids: Vec<Option<Box<str>>>,
    index: PlHashMap<Box<str>, u32>,
    null_slot: Option<u32>,
    cycles: Vec<CycleTotals>,
    /// The last dictionary of ids seen, and the slot of each of its values.
    dictionary: Option<(ArrayRef, Vec<u32>)>,
}

struct CycleTotals {
    rows: Vec<i64>,
    negative: Vec<i64>,
    aggregates: Vec<Acc>,
}

impl Totals {
    fn new(folds: &[Fold]) -> Totals {
        Totals {
            ids: Vec::new(),
            index: PlHashMap::new(),
            null_slot: None,
            cycles: folds
                .iter()
                .map(|f| CycleTotals {
                    rows: Vec::new(),
                    negative: Vec::new(),
                    aggregates: f.aggregates.iter().map(|s| Acc::new(s.agg, s.integer)).collect(),
                })
                .collect(),
            dictionary: None,
        }
    }

    fn slot(&mut self, id: Option<&str>) -> u32 {
        let next = self.ids.len() as u32;
        let slot = match id {
            None => *self.null_slot.get_or_insert(next),
            Some(id) => match self.index.get(id) {
                Some(s) => *s,
                None => {
                    self.index.insert(id.into(), next);
                    next
                }
            },
        };
        if slot == next {
            self.ids.push(id.map(Into::into));
        }
        slot
    }

    /// Every accumulator sized to the slots.
    fn grow(&mut self) {
        let n = self.ids.len();
        for c in &mut self.cycles {
            c.rows.resize(n, 0);
            c.negative.resize(n, 0);
            for a in &mut c.aggregates {
                a.resize(n);
            }
        }
    }

    /// The slot of each row's account id. The ids are hashed once per
    /// dictionary, which Parquet keeps for a whole column chunk.
    fn slots(&mut self, ids: &arrow_array::DictionaryArray<Int32Type>) -> std::result::Result<Vec<u32>, String> {
        // The reader hands out each batch's dictionary anew, over the same
        // buffers while the column chunk lasts (held here, so not reused).
        let buffers = |a: &ArrayRef| {
            let data = a.to_data();
            (
                data.len(),
                data.offset(),
                data.buffers().iter().map(|b| b.as_ptr()).collect::<Vec<_>>(),
            )
        };
        let same = matches!(&self.dictionary, Some((d, _)) if Arc::ptr_eq(d, ids.values()) || buffers(d) == buffers(ids.values()));
        if !same {
            let strings = arrow_cast::cast(ids.values(), &ArrowType::Utf8).map_err(|e| e.to_string())?;
            let strings = strings.as_string::<i32>();
            let slots = (0..strings.len())
                .map(|i| self.slot(strings.is_valid(i).then(|| strings.value(i))))
                .collect();
            self.dictionary = Some((ids.values().clone(), slots));
        }
        let dictionary = &self.dictionary.as_ref().expect("set above").1;
        let keys = ids.keys();
        let mut slots: Vec<u32> = keys
            .values()
            .iter()
            .map(|&k| dictionary.get(k as usize).copied().unwrap_or(u32::MAX))
            .collect();
        if let Some(nulls) = keys.nulls().filter(|n| n.null_count() > 0) {
            let null = self.slot(None);
            for (i, slot) in slots.iter_mut().enumerate() {
                if nulls.is_null(i) {
                    *slot = null;
                }
            }
        }
        if slots.contains(&u32::MAX) {
            return Err("an account id's dictionary key is out of range".into());
        }
        self.grow();
        Ok(slots)
    }

    /// Adds a run to the cycles and aggregates whose windows hold its interval.
    fn add_run(&mut self, run: &Run, folds: &Folds) {
        let s = run.slot as usize;
        let holds = |(from, to): (usize, usize)| from <= run.interval && run.interval < to;
        for (fold, cycle) in folds.cycles.iter().zip(&mut self.cycles) {
            if !fold.intervals.is_some_and(holds) {
                continue;
            }
            cycle.rows[s] += run.rows;
            cycle.negative[s] += run.negative;
            for (acc, spec) in cycle.aggregates.iter_mut().zip(&fold.aggregates) {
                if holds(spec.intervals) {
                    match (acc, &run.metrics[spec.metric]) {
                        (Acc::Int(r), RunStats::Int(stats)) => r.combine(s, stats),
                        (Acc::Float(r), RunStats::Float(stats)) => r.combine(s, stats),
                        _ => unreachable!("a run's metrics are typed as the aggregates"),
                    }
                }
            }
        }
    }

    /// Adds the totals of row groups read after these.
    fn merge(&mut self, other: Totals) {
        let slots: Vec<u32> = other.ids.iter().map(|id| self.slot(id.as_deref())).collect();
        self.grow();
        for (mine, theirs) in self.cycles.iter_mut().zip(other.cycles) {
            for (from, &to) in slots.iter().enumerate() {
                mine.rows[to as usize] += theirs.rows[from];
                mine.negative[to as usize] += theirs.negative[from];
            }
            for (a, b) in mine.aggregates.iter_mut().zip(&theirs.aggregates) {
                a.merge(b, &slots);
            }
        }
    }

    /// The grouped usage of cycle `k`: the ids with a row in its range, in
    /// the order first met.
    fn frame(&self, k: usize, plan: &Plan) -> Result<DataFrame> {
        let cycle = &self.cycles[k];
        let slots: Vec<usize> = (0..self.ids.len()).filter(|&s| cycle.rows[s] > 0).collect();
        let ids: Vec<Option<&str>> = slots.iter().map(|&s| self.ids[s].as_deref()).collect();
        let mut columns = vec![Column::new("account_id".into(), ids)];
        for (a, acc) in plan.aggregates.iter().zip(&cycle.aggregates) {
            columns.push(acc.column(a.name.as_str(), &slots));
        }
        let counter = |name: &str, values: &[i64]| {
            Column::new(name.into(), slots.iter().map(|&s| values[s]).collect::<Vec<i64>>())
        };
        columns.push(counter(ROWS, &cycle.rows));
        columns.push(counter(NEGATIVE_ROWS, &cycle.negative));
        DataFrame::new_infer_height(columns).ctx(|| "cannot assemble the usage aggregates".into())
    }
}

/// A metric value as the aggregates combine it.
trait Value: Copy + PartialOrd + Default {
    fn plus(self, other: Self) -> Self;
    fn as_f64(self) -> f64;
    /// Equal for the values `n_unique` counts once.
    fn key(self) -> u64;
    fn column(name: &str, values: Vec<Self>) -> Column;
    fn optional_column(name: &str, values: Vec<Option<Self>>) -> Column;
}

impl Value for i64 {
    fn plus(self, other: i64) -> i64 {
        self.wrapping_add(other)
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn key(self) -> u64 {
        self as u64
    }
    fn column(name: &str, values: Vec<i64>) -> Column {
        Column::new(name.into(), values)
    }
    fn optional_column(name: &str, values: Vec<Option<i64>>) -> Column {
        Column::new(name.into(), values)
    }
}

impl Value for f64 {
    fn plus(self, other: f64) -> f64 {
        self + other
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn key(self) -> u64 {
        match self {
            0.0 => 0,
            v if v.is_nan() => f64::NAN.to_bits(),
            v => v.to_bits(),
        }
    }
    fn column(name: &str, values: Vec<f64>) -> Column {
        Column::new(name.into(), values)
    }
    fn optional_column(name: &str, values: Vec<Option<f64>>) -> Column {
        Column::new(name.into(), values)
    }
}

/// One aggregate's accumulators, by metric type.
enum Acc {
    Int(Reduce<i64>),
    Float(Reduce<f64>),
}

impl Acc {
    fn new(agg: Agg, integer: bool) -> Acc {
        match integer {
            true => Acc::Int(Reduce::new(agg)),
            false => Acc::Float(Reduce::new(agg)),
        }
    }

    fn resize(&mut self, n: usize) {
        match self {
            Acc::Int(r) => r.resize(n),
            Acc::Float(r) => r.resize(n),
        }
    }

    fn merge(&mut self, other: &Acc, slots: &[u32]) {
        match (self, other) {
            (Acc::Int(a), Acc::Int(b)) => a.merge(b, slots),
            (Acc::Float(a), Acc::Float(b)) => a.merge(b, slots),
            _ => unreachable!("one plan gives every row group the same accumulators"),
        }
    }

    fn column(&self, name: &str, slots: &[usize]) -> Column {
        match self {
            Acc::Int(r) => r.column(name, slots),
            Acc::Float(r) => r.column(name, slots),
        }
    }
}

/// Per slot: what an aggregate keeps of the values in its window.
enum Reduce<T> {
    /// `sum` and `per_day` (divided after grouping).
    Sum(Vec<T>),
    Count(Vec<i64>),
    Mean(Vec<f64>, Vec<i64>),
    Min(Vec<Option<T>>),
    Max(Vec<Option<T>>),
    /// The date and value of the latest value; on a tie of dates the largest.
    Last(Vec<Option<(i32, T)>>),
    Distinct(Vec<PlHashSet<u64>>),
}

impl<T: Value> Reduce<T> {
    fn new(agg: Agg) -> Reduce<T> {
        match agg {
            Agg::Sum | Agg::PerDay => Reduce::Sum(Vec::new()),
            Agg::Count => Reduce::Count(Vec::new()),
            Agg::Mean => Reduce::Mean(Vec::new(), Vec::new()),
            Agg::Min => Reduce::Min(Vec::new()),
            Agg::Max => Reduce::Max(Vec::new()),
            Agg::Last => Reduce::Last(Vec::new()),
            Agg::NUnique => Reduce::Distinct(Vec::new()),
        }
    }

    fn resize(&mut self, n: usize) {
        match self {
            Reduce::Sum(v) => v.resize(n, T::default()),
            Reduce::Count(v) => v.resize(n, 0),
            Reduce::Mean(s, c) => {
                s.resize(n, 0.0);
                c.resize(n, 0);
            }
            Reduce::Min(v) | Reduce::Max(v) => v.resize(n, None),
            Reduce::Last(v) => v.resize(n, None),
            Reduce::Distinct(v) => v.resize_with(n, PlHashSet::new),
        }
    }

    /// Adds a run's values to slot `s` (`n_unique` takes its values one by
    /// one instead).
    fn combine(&mut self, s: usize, run: &Stats<T>) {
        if run.count == 0 {
            return;
        }
        match self {
            Reduce::Sum(sum) => sum[s] = sum[s].plus(run.sum),
            Reduce::Count(count) => count[s] += run.count,
            Reduce::Mean(sum, count) => {
                sum[s] += run.float_sum;
                count[s] += run.count;
            }
            Reduce::Min(min) => {
                if let Some(v) = run.min
                    && min[s].is_none_or(|m| v < m)
                {
                    min[s] = Some(v);
                }
            }
            Reduce::Max(max) => {
                if let Some(v) = run.max
                    && max[s].is_none_or(|m| v > m)
                {
                    max[s] = Some(v);
                }
            }
            Reduce::Last(last) => {
                if later(run.last, last[s]) {
                    last[s] = run.last;
                }
            }
            Reduce::Distinct(_) => {}
        }
    }

    /// Adds `other`'s slot `i` into this one's slot `slots[i]`.
    fn merge(&mut self, other: &Reduce<T>, slots: &[u32]) {
        let pairs = slots.iter().map(|&s| s as usize).enumerate();
        match (self, other) {
            (Reduce::Sum(a), Reduce::Sum(b)) => pairs.for_each(|(f, t)| a[t] = a[t].plus(b[f])),
            (Reduce::Count(a), Reduce::Count(b)) => pairs.for_each(|(f, t)| a[t] += b[f]),
            (Reduce::Mean(a, n), Reduce::Mean(b, m)) => pairs.for_each(|(f, t)| {
                a[t] += b[f];
                n[t] += m[f];
            }),
            (Reduce::Min(a), Reduce::Min(b)) => pairs.for_each(|(f, t)| {
                if let Some(v) = b[f]
                    && a[t].is_none_or(|m| v < m)
                {
                    a[t] = Some(v);
                }
            }),
            (Reduce::Max(a), Reduce::Max(b)) => pairs.for_each(|(f, t)| {
                if let Some(v) = b[f]
                    && a[t].is_none_or(|m| v > m)
                {
                    a[t] = Some(v);
                }
            }),
            (Reduce::Last(a), Reduce::Last(b)) => pairs.for_each(|(f, t)| {
                if later(b[f], a[t]) {
                    a[t] = b[f];
                }
            }),
            (Reduce::Distinct(a), Reduce::Distinct(b)) => pairs.for_each(|(f, t)| a[t].extend(&b[f])),
            _ => unreachable!("one plan gives every row group the same accumulators"),
        }
    }

    fn column(&self, name: &str, slots: &[usize]) -> Column {
        match self {
            Reduce::Sum(v) => T::column(name, slots.iter().map(|&s| v[s]).collect()),
            Reduce::Count(v) => i64::column(name, slots.iter().map(|&s| v[s]).collect()),
            Reduce::Mean(sum, count) => f64::optional_column(
                name,
                slots
                    .iter()
                    .map(|&s| (count[s] > 0).then(|| sum[s] / count[s] as f64))
                    .collect(),
            ),
            Reduce::Min(v) | Reduce::Max(v) => T::optional_column(name, slots.iter().map(|&s| v[s]).collect()),
            Reduce::Last(v) => T::optional_column(name, slots.iter().map(|&s| v[s].map(|(_, x)| x)).collect()),
            Reduce::Distinct(v) => i64::column(name, slots.iter().map(|&s| v[s].len() as i64).collect()),
        }
    }
}

/// Whether a dated value comes after another as `last` orders them.
fn later<T: Value>(candidate: Option<(i32, T)>, current: Option<(i32, T)>) -> bool {
    match (candidate, current) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some((d, v)), Some((e, w))) => d > e || (d == e && v > w),
    }
}

/// The byte ranges of an object that a read needs, fetched beforehand.
struct Fetched {
    len: u64,
    ranges: Vec<(u64, Bytes)>,
}

impl Fetched {
    /// An object's Parquet footer: its last 8 bytes give the length of the
    /// metadata before them.
    fn footer(store: &Store, path: &Path, size: u64) -> Result<Fetched> {
        let unreadable = |cause: &str| -> crate::error::Error {
            SchemaError::Unreadable {
                dataset: "usage".into(),
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

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::config::{Aggregate, Pipeline};

    /// Usage files with nulls everywhere, negative values, ids met again in
    /// later row groups and files, and several row groups per file.
    fn write_usage(dir: &std::path::Path, rng: &mut ChaCha8Rng, narrow_ints: bool) -> String {
        let usage = dir.join("usage");
        std::fs::create_dir_all(&usage).unwrap();
        let start = epoch_days(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        for f in 0..rng.random_range(1..=3) {
            let rows = rng.random_range(0..400);
            let mut ids = Vec::new();
            let mut dates = Vec::new();
            let mut ints = Vec::new();
            let mut floats = Vec::new();
            for _ in 0..rows {
                ids.push((!rng.random_bool(0.04)).then(|| format!("A{:03}", rng.random_range(0..25))));
                dates.push((!rng.random_bool(0.04)).then(|| start + rng.random_range(0..200)));
                ints.push((!rng.random_bool(0.1)).then(|| rng.random_range(-3i64..60)));
                // Quarters add up exactly in any order.
                floats.push((!rng.random_bool(0.1)).then(|| rng.random_range(-8i32..120) as f64 / 4.0));
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
                assert!(
                    got.equals_missing(&want),
                    "seed {seed}, as of {as_of}, drop {drop_negative}, {:?}\ngot {got}\nwant {want}",
                    pipeline.aggregates
                );
            }
        }
    }
}
