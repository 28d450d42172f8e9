//! The fold of usage rows into per-account totals, for every cycle of a
//! pass: runs of rows of one account between window bounds, added to each
//! cycle's and aggregate's accumulators, and row groups' totals merged.

use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, Date32Array, DictionaryArray};
use arrow_schema::DataType as ArrowType;
use chrono::NaiveDate;
use polars::prelude::*;

use crate::config::Agg;
use crate::engine::{NEGATIVE_ROWS, ROWS};
use crate::error::{Context, Result};
use crate::plan::{Plan, window};

/// A metric the aggregates read: our name, the file's name, and whether it
/// is conformed to integers (else to floating point).
pub(super) struct Metric {
    pub(super) name: String,
    pub(super) source: String,
    /// Conformed to integers (else to floating point).
    pub(super) integer: bool,
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
    fn new(values: &[Values]) -> Run {
        Run {
            slot: 0,
            interval: 0,
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

    /// Starts a run of `slot` in `interval` over this one.
    fn start(&mut self, slot: u32, interval: usize) {
        (self.slot, self.interval, self.rows, self.negative) = (slot, interval, 0, 0);
        for m in &mut self.metrics {
            match m {
                RunStats::Int(s) => *s = Stats::default(),
                RunStats::Float(s) => *s = Stats::default(),
            }
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
    count: i64,
    min: Option<T>,
    max: Option<T>,
    last: Option<(i32, T)>,
}

impl<T: Value> Stats<T> {
    /// Adds the values of the rows `keep` holds, in locals: the additions
    /// do not wait on memory. Only what some aggregate reads is kept.
    fn add_rows(
        &mut self,
        rows: std::ops::Range<usize>,
        days: &[i32],
        values: &[T],
        keep: impl Fn(usize) -> bool,
        needs: Needs,
    ) {
        match (needs.extremes, needs.last) {
            (false, false) => self.fold::<false, false>(rows, days, values, keep),
            (true, false) => self.fold::<true, false>(rows, days, values, keep),
            (false, true) => self.fold::<false, true>(rows, days, values, keep),
            (true, true) => self.fold::<true, true>(rows, days, values, keep),
        }
    }

    fn fold<const EXTREMES: bool, const LAST: bool>(
        &mut self,
        rows: std::ops::Range<usize>,
        days: &[i32],
        values: &[T],
        keep: impl Fn(usize) -> bool,
    ) {
        let (mut sum, mut count, mut min, mut max, mut last) = (self.sum, self.count, self.min, self.max, self.last);
        for k in rows {
            if !keep(k) {
                continue;
            }
            let v = values[k];
            sum = sum.plus(v);
            count += 1;
            if EXTREMES {
                if min.is_none_or(|m| v.below(m)) {
                    min = Some(v);
                }
                if max.is_none_or(|m| v.above(m)) {
                    max = Some(v);
                }
            }
            if LAST && later(Some((days[k], v)), last) {
                last = Some((days[k], v));
            }
        }
        *self = Stats {
            sum,
            count,
            min,
            max,
            last,
        };
    }
}

/// What the aggregates of a metric read of its runs beyond the sum and the
/// count.
#[derive(Clone, Copy, Default)]
struct Needs {
    /// `min` or `max`.
    extremes: bool,
    last: bool,
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

pub(super) fn epoch_days(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// What the cycles of a pass fold. Their windows' bounds cut the dates
/// into intervals `(bounds[j], bounds[j + 1]]`; each window and each
/// cycle's range is a span of consecutive intervals.
pub(super) struct Folds {
    pub(super) cycles: Vec<Fold>,
    bounds: Vec<i32>,
    drop_negative: bool,
    /// Whether some aggregate is an `n_unique`.
    distinct: bool,
    /// By metric, what its aggregates read.
    needs: Vec<Needs>,
}

impl Folds {
    pub(super) fn new(plan: &Plan, metrics: &[Metric], as_ofs: &[NaiveDate], drop_negative: bool) -> Result<Folds> {
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
        let mut needs = vec![Needs::default(); metrics.len()];
        for spec in cycles.iter().flat_map(|c| &c.aggregates) {
            let needs = &mut needs[spec.metric];
            needs.extremes |= matches!(spec.agg, Agg::Min | Agg::Max);
            needs.last |= spec.agg == Agg::Last;
        }
        Ok(Folds {
            cycles,
            bounds,
            drop_negative,
            distinct,
            needs,
        })
    }

    /// The interval of a day inside the first and the last bound.
    fn interval(&self, day: i32) -> usize {
        self.bounds.partition_point(|&b| b < day) - 1
    }
}

/// What one cycle folds: its range of dates and each aggregate's window,
/// as days since the epoch, `(after, through]`, and as intervals.
pub(super) struct Fold {
    pub(super) range: Option<(i32, i32)>,
    intervals: Option<(usize, usize)>,
    aggregates: Vec<Spec>,
}

pub(super) struct Spec {
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
pub(super) enum Values {
    Int(arrow_array::Int64Array),
    Float(arrow_array::Float64Array),
}

/// The account ids a pass meets, each with a global slot, shared by the
/// threads of the pass. Each thread keeps the slots it has looked up, so a
/// thread takes the lock only for an id it meets for the first time.
pub(super) struct Ids {
    table: Mutex<IdTable>,
    scratch: Vec<Mutex<Scratch>>,
}

#[derive(Default)]
struct IdTable {
    index: PlHashMap<Box<str>, u32>,
    ids: Vec<Option<Box<str>>>,
    null: Option<u32>,
}

/// A thread's own: the global slot of each id it met, and the local slot
/// of each global one in the row group it is folding (`u32::MAX` if none).
#[derive(Default)]
pub(super) struct Scratch {
    /// Keyed by ids held inline (up to 24 bytes): a probe reads no other
    /// memory than the table's.
    known: PlHashMap<PlSmallStr, u32>,
    null: Option<u32>,
    local: Vec<u32>,
}

impl Ids {
    pub(super) fn new(threads: usize) -> Ids {
        Ids {
            table: Mutex::default(),
            scratch: (0..threads.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    /// The scratch of the calling thread of the pool.
    pub(super) fn scratch(&self) -> std::sync::MutexGuard<'_, Scratch> {
        let i = rayon::current_thread_index().unwrap_or(0) % self.scratch.len();
        self.scratch[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The global slot of an id stored plain: the thread's own table
    /// first, the shared one for an id the thread meets the first time.
    fn global(&self, scratch: &mut Scratch, id: Option<&str>) -> u32 {
        let known = match id {
            None => scratch.null,
            Some(id) => scratch.known.get(id).copied(),
        };
        if let Some(slot) = known {
            return slot;
        }
        let slot = self.table.lock().unwrap_or_else(|e| e.into_inner()).slot(id);
        match id {
            None => scratch.null = Some(slot),
            Some(id) => {
                scratch.known.insert(PlSmallStr::from_str(id), slot);
            }
        }
        slot
    }

    /// The global slots of a dictionary's values, under one lock: a
    /// dictionary's ids are distinct, so the thread's own table would only
    /// hash each of them a second time.
    fn globals(&self, strings: &arrow_array::StringArray) -> Vec<u32> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        (0..strings.len())
            .map(|i| table.slot(strings.is_valid(i).then(|| strings.value(i))))
            .collect()
    }
}

impl IdTable {
    /// The slot of an id, the next one if it is new.
    fn slot(&mut self, id: Option<&str>) -> u32 {
        let next = self.ids.len() as u32;
        let slot = match id {
            None => *self.null.get_or_insert(next),
            Some(id) => match self.index.get(id) {
                Some(&slot) => slot,
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
}

/// One cycle's counters and aggregates, indexed by slot.
struct CycleTotals {
    rows: Vec<i64>,
    negative: Vec<i64>,
    aggregates: Vec<Acc>,
}

impl CycleTotals {
    fn new(fold: &Fold) -> CycleTotals {
        CycleTotals {
            rows: Vec::new(),
            negative: Vec::new(),
            aggregates: fold.aggregates.iter().map(|s| Acc::new(s.agg, s.integer)).collect(),
        }
    }

    fn resize(&mut self, n: usize) {
        self.rows.resize(n, 0);
        self.negative.resize(n, 0);
        for a in &mut self.aggregates {
            a.resize(n);
        }
    }
}

/// The totals of one row group, over the ids it holds (local slots).
pub(super) struct Partial {
    /// The global slot of each local one, in the order first met.
    globals: Vec<u32>,
    cycles: Vec<CycleTotals>,
    /// The last dictionary of ids seen, and the local slot of each value.
    dictionary: Option<(ArrayRef, Vec<u32>)>,
}

impl Partial {
    pub(super) fn new(folds: &Folds) -> Partial {
        Partial {
            globals: Vec::new(),
            cycles: folds.cycles.iter().map(CycleTotals::new).collect(),
            dictionary: None,
        }
    }

    fn slot(&mut self, ids: &Ids, scratch: &mut Scratch, id: Option<&str>) -> u32 {
        let global = ids.global(scratch, id);
        self.local(scratch, global)
    }

    /// The local slot of a global one, the next one if the row group had
    /// not met it.
    fn local(&mut self, scratch: &mut Scratch, global: u32) -> u32 {
        let global = global as usize;
        if scratch.local.len() <= global {
            scratch.local.resize(global + 1, u32::MAX);
        }
        if scratch.local[global] == u32::MAX {
            scratch.local[global] = self.globals.len() as u32;
            self.globals.push(global as u32);
        }
        scratch.local[global]
    }

    /// Leaves the thread's scratch as it found it.
    pub(super) fn release(&self, scratch: &mut Scratch) {
        for &g in &self.globals {
            scratch.local[g as usize] = u32::MAX;
        }
    }

    fn grow(&mut self) {
        let n = self.globals.len();
        for c in &mut self.cycles {
            c.resize(n);
        }
    }

    /// The local slot of each row's account id: hashed once per value of a
    /// dictionary, which Parquet keeps for a column chunk, or once per row
    /// when the ids are stored plain.
    fn slots(&mut self, ids: &Ids, scratch: &mut Scratch, column: &ArrayRef) -> std::result::Result<Vec<u32>, String> {
        let slots = if let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() {
            self.dictionary_slots(ids, scratch, dictionary)?
        } else if let Some(strings) = column.as_string_view_opt() {
            (0..strings.len())
                .map(|i| self.slot(ids, scratch, strings.is_valid(i).then(|| strings.value(i))))
                .collect()
        } else if let Some(strings) = column.as_string_opt::<i32>() {
            (0..strings.len())
                .map(|i| self.slot(ids, scratch, strings.is_valid(i).then(|| strings.value(i))))
                .collect()
        } else if let Some(strings) = column.as_string_opt::<i64>() {
            (0..strings.len())
                .map(|i| self.slot(ids, scratch, strings.is_valid(i).then(|| strings.value(i))))
                .collect()
        } else {
            return Err(format!("the account ids are read as {}", column.data_type()));
        };
        self.grow();
        Ok(slots)
    }

    fn dictionary_slots(
        &mut self,
        ids: &Ids,
        scratch: &mut Scratch,
        column: &DictionaryArray<Int32Type>,
    ) -> std::result::Result<Vec<u32>, String> {
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
        let same = matches!(&self.dictionary, Some((d, _)) if Arc::ptr_eq(d, column.values()) || buffers(d) == buffers(column.values()));
        if !same {
            let strings = arrow_cast::cast(column.values(), &ArrowType::Utf8).map_err(|e| e.to_string())?;
            let strings = strings.as_string::<i32>();
            let slots = ids
                .globals(strings)
                .into_iter()
                .map(|global| self.local(scratch, global))
                .collect();
            self.dictionary = Some((column.values().clone(), slots));
        }
        let dictionary = &self.dictionary.as_ref().expect("set above").1;
        let keys = column.keys();
        let mut slots: Vec<u32> = keys
            .values()
            .iter()
            .map(|&k| dictionary.get(k as usize).copied().unwrap_or(u32::MAX))
            .collect();
        if let Some(nulls) = keys.nulls().filter(|n| n.null_count() > 0) {
            let null = self.slot(ids, scratch, None);
            for (i, slot) in slots.iter_mut().enumerate() {
                if nulls.is_null(i) {
                    *slot = null;
                }
            }
        }
        if slots.contains(&u32::MAX) {
            return Err("an account id's dictionary key is out of range".into());
        }
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

    /// Folds one batch of usage rows into every cycle's totals.
    pub(super) fn add_batch(
        &mut self,
        (ids, scratch): (&Ids, &mut Scratch),
        account_ids: &ArrayRef,
        dates: &Date32Array,
        values: &[Values],
        folds: &Folds,
    ) -> std::result::Result<(), String> {
        let slots = self.slots(ids, scratch, account_ids)?;

        // A row is negative when a metric the aggregates read is below zero.
        let rows = dates.len();
        // Mostly none is: the rows are flagged only when a value (null or
        // not) is below zero, and `negative` is empty otherwise.
        let below_zero = values.iter().any(|v| match v {
            Values::Int(a) => a.values().iter().fold(false, |any, &x| any | (x < 0)),
            Values::Float(a) => a.values().iter().fold(false, |any, &x| any | (x < 0.0)),
        });
        let mut negative = vec![false; if below_zero { rows } else { 0 }];
        if below_zero {
            for v in values {
                match v {
                    Values::Int(a) => flag_negative(&mut negative, a.values(), a.nulls(), |x| x < 0),
                    Values::Float(a) => flag_negative(&mut negative, a.values(), a.nulls(), |x| x < 0.0),
                }
            }
        }
        let negative_at = |i: usize| below_zero && negative[i];
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
        // Windows of no days hold no date.
        let (first, last) = match folds.bounds.as_slice() {
            [first, .., last] => (*first, *last),
            _ => (0, 0),
        };
        let dated = |i: usize| dates_nulls.is_none_or(|n| n.is_valid(i));
        let mut interval = 0;
        let mut run = Run::new(values);
        let mut i = 0;
        while i < rows {
            let day = days[i];
            if day <= first || day > last || !dated(i) {
                i += 1;
                continue;
            }
            // Mostly the interval of the row before.
            if !(folds.bounds[interval] < day && day <= folds.bounds[interval + 1]) {
                interval = folds.interval(day);
            }
            let (after, through) = (folds.bounds[interval], folds.bounds[interval + 1]);
            let slot = slots[i];
            let mut end = i + 1;
            while end < rows && slots[end] == slot && days[end] > after && days[end] <= through && dated(end) {
                end += 1;
            }
            run.start(slot, interval);
            run.rows = (end - i) as i64;
            if below_zero {
                run.negative = negative[i..end].iter().filter(|n| **n).count() as i64;
            }
            let drop = folds.drop_negative && run.negative > 0;
            for (((stats, v), nulls), &needs) in run.metrics.iter_mut().zip(values).zip(&metric_nulls).zip(&folds.needs)
            {
                let keep = |k: usize| nulls.is_none_or(|n| n.is_valid(k)) && !(drop && negative_at(k));
                let every = nulls.is_none() && !drop;
                match (stats, v) {
                    (RunStats::Int(s), Values::Int(a)) if every => {
                        s.add_rows(i..end, days, a.values(), |_| true, needs)
                    }
                    (RunStats::Int(s), Values::Int(a)) => s.add_rows(i..end, days, a.values(), keep, needs),
                    (RunStats::Float(s), Values::Float(a)) if every => {
                        s.add_rows(i..end, days, a.values(), |_| true, needs)
                    }
                    (RunStats::Float(s), Values::Float(a)) => s.add_rows(i..end, days, a.values(), keep, needs),
                    _ => unreachable!("a run's metrics are typed as the batch's"),
                }
            }
            self.add_run(&run, folds);
            i = end;
        }

        // `n_unique` does not add up from runs: its values go in one by one.
        if folds.distinct {
            for (fold, cycle) in folds.cycles.iter().zip(&mut self.cycles) {
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
                            && !(folds.drop_negative && negative_at(i))
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

/// The totals of a pass over the global slots, and the order in which the
/// row groups, merged in file order, first met each.
pub(super) struct Totals {
    cycles: Vec<CycleTotals>,
    order: Vec<u32>,
    met: Vec<bool>,
}

impl Totals {
    pub(super) fn new(folds: &Folds) -> Totals {
        Totals {
            cycles: folds.cycles.iter().map(CycleTotals::new).collect(),
            order: Vec::new(),
            met: Vec::new(),
        }
    }

    /// Adds the totals of a row group read after those merged so far.
    pub(super) fn merge(&mut self, other: Partial) {
        let n = other.globals.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
        if n > self.met.len() {
            self.met.resize(n, false);
            for c in &mut self.cycles {
                c.resize(n);
            }
        }
        for &g in &other.globals {
            if !self.met[g as usize] {
                self.met[g as usize] = true;
                self.order.push(g);
            }
        }
        let slots = &other.globals;
        for (mine, theirs) in self.cycles.iter_mut().zip(other.cycles) {
            for (from, &to) in slots.iter().enumerate() {
                mine.rows[to as usize] += theirs.rows[from];
                mine.negative[to as usize] += theirs.negative[from];
            }
            for (a, b) in mine.aggregates.iter_mut().zip(&theirs.aggregates) {
                a.merge(b, slots);
            }
        }
    }

    /// The grouped usage of cycle `k`: the ids with a row in its range, in
    /// the order first met.
    pub(super) fn frame(&self, k: usize, plan: &Plan, ids: &Ids) -> Result<DataFrame> {
        let cycle = &self.cycles[k];
        let slots: Vec<usize> = self
            .order
            .iter()
            .map(|&s| s as usize)
            .filter(|&s| cycle.rows[s] > 0)
            .collect();
        let table = ids.table.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<Option<&str>> = slots.iter().map(|&s| table.ids[s].as_deref()).collect();
        let mut columns = vec![Column::new("account_id".into(), names)];
        for (a, acc) in plan.aggregates.iter().zip(&cycle.aggregates) {
            // `per_day` is the sum divided by the window's days.
            let days = (a.agg == Agg::PerDay).then_some(a.window_days as f64);
            columns.push(acc.column(a.name.as_str(), &slots, days));
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
    /// Whether this value replaces `current` as the minimum; as polars'
    /// `min`, a NaN is the minimum only of NaNs.
    fn below(self, current: Self) -> bool;
    /// The same for the maximum.
    fn above(self, current: Self) -> bool;
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
    fn below(self, current: i64) -> bool {
        self < current
    }
    fn above(self, current: i64) -> bool {
        self > current
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
    fn below(self, current: f64) -> bool {
        !self.is_nan() && (current.is_nan() || self < current)
    }
    fn above(self, current: f64) -> bool {
        !self.is_nan() && (current.is_nan() || self > current)
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

    /// The column of the slots, sums divided by `per_days` when given.
    fn column(&self, name: &str, slots: &[usize], per_days: Option<f64>) -> Column {
        match self {
            Acc::Int(r) => r.column(name, slots, per_days),
            Acc::Float(r) => r.column(name, slots, per_days),
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
                sum[s] += run.sum.as_f64();
                count[s] += run.count;
            }
            Reduce::Min(min) => {
                if let Some(v) = run.min
                    && min[s].is_none_or(|m| v.below(m))
                {
                    min[s] = Some(v);
                }
            }
            Reduce::Max(max) => {
                if let Some(v) = run.max
                    && max[s].is_none_or(|m| v.above(m))
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
                    && a[t].is_none_or(|m| v.below(m))
                {
                    a[t] = Some(v);
                }
            }),
            (Reduce::Max(a), Reduce::Max(b)) => pairs.for_each(|(f, t)| {
                if let Some(v) = b[f]
                    && a[t].is_none_or(|m| v.above(m))
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

    fn column(&self, name: &str, slots: &[usize], per_days: Option<f64>) -> Column {
        match self {
            Reduce::Sum(v) => match per_days {
                Some(days) => f64::column(name, slots.iter().map(|&s| v[s].as_f64() / days).collect()),
                None => T::column(name, slots.iter().map(|&s| v[s]).collect()),
            },
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
        (Some((d, v)), Some((e, w))) => d > e || (d == e && v.above(w)),
    }
}
