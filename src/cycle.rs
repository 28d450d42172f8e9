//! Review cycles: ids such as `2026-Q4`, `2026-H2`, `2026-11` and `2026`, the
//! period each names, and its `as_of` date (the period's last day).
//!
//! A pipeline with `fiscal_year_start_month` other than 1 runs on fiscal
//! periods instead, with ids that cannot be mistaken for calendar ones:
//! `FY2027`, `FY2027-H1`, `FY2027-Q1`, `FY2027-M01`. A fiscal year is named
//! by the calendar year it ends in: with a February start, FY2027 runs from
//! February 2026 to January 2027, and FY2027-Q1 is February to April 2026.
//! The fiscal calendar is the process's (one pipeline per run), set once from
//! the pipeline by [`set_fiscal_year_start`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// How often a pipeline is run; a cycle id's form follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    Quarter,
    Half,
    Month,
    Year,
}

impl Cadence {
    /// The period's name in messages and in the pipeline file.
    pub fn name(self) -> &'static str {
        match self {
            Cadence::Quarter => "quarter",
            Cadence::Half => "half",
            Cadence::Month => "month",
            Cadence::Year => "year",
        }
    }

    /// Months in one period.
    fn months(self) -> i32 {
        match self {
            Cadence::Year => 12,
            Cadence::Half => 6,
            Cadence::Quarter => 3,
            Cadence::Month => 1,
        }
    }
}

/// The first month of the fiscal year (1: the calendar year).
static FISCAL_YEAR_START: AtomicU32 = AtomicU32::new(1);

/// Sets the fiscal calendar that cycle ids are read and dated in: the
/// pipeline's `fiscal_year_start_month` (1 to 12).
pub fn set_fiscal_year_start(month: u32) {
    assert!((1..=12).contains(&month), "a month");
    FISCAL_YEAR_START.store(month, Ordering::Relaxed);
}

/// The first month of the fiscal year now in force.
pub fn fiscal_year_start() -> u32 {
    FISCAL_YEAR_START.load(Ordering::Relaxed)
}

/// The date `days` days after 1970-01-01 (how Parquet, Arrow and polars
/// store a date).
pub fn from_epoch_days(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date") + chrono::Duration::days(days as i64)
}

/// A date's (year, month 1-12) in the fiscal numbering in force: with a
/// February start, 2026-02-15 is month 1 of fiscal year 2027. The calendar's
/// own with a January start.
pub fn fiscal_month(date: NaiveDate) -> (i32, u32) {
    let cycle = Cycle::containing_in(Cadence::Month, date, fiscal_year_start());
    (cycle.year, cycle.index)
}

/// One review period: a year, a half, a quarter or a month, of the calendar
/// or of the fiscal year. Only these forms exist, so a cycle id can never
/// carry a path character into an object key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cycle {
    /// A fiscal period (`FY...`), dated by [`fiscal_year_start`].
    fiscal: bool,
    cadence: CadenceOrder,
    /// The (fiscal) year, named by the calendar year it ends in.
    year: i32,
    /// 1-based index of the period in its year (1 for a year).
    index: u32,
}

/// Cadences in the order their ids sort (years first), for `Ord`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum CadenceOrder {
    Year,
    Half,
    Quarter,
    Month,
}

impl CadenceOrder {
    fn of(c: Cadence) -> CadenceOrder {
        match c {
            Cadence::Year => CadenceOrder::Year,
            Cadence::Half => CadenceOrder::Half,
            Cadence::Quarter => CadenceOrder::Quarter,
            Cadence::Month => CadenceOrder::Month,
        }
    }

    fn cadence(self) -> Cadence {
        match self {
            CadenceOrder::Year => Cadence::Year,
            CadenceOrder::Half => Cadence::Half,
            CadenceOrder::Quarter => Cadence::Quarter,
            CadenceOrder::Month => Cadence::Month,
        }
    }
}

impl Cycle {
    fn new(fiscal: bool, cadence: Cadence, year: i32, index: u32) -> Cycle {
        Cycle {
            fiscal,
            cadence: CadenceOrder::of(cadence),
            year,
            index,
        }
    }

    pub fn cadence(&self) -> Cadence {
        self.cadence.cadence()
    }

    /// Whether this is a fiscal period (`FY...`).
    pub fn is_fiscal(&self) -> bool {
        self.fiscal
    }

    /// Months from a calendar month to the same month of the fiscal year's
    /// numbering: a fiscal year starting in month S begins S - 1 months
    /// into the calendar year before the one it is named by.
    fn shift(fiscal: bool, start: u32) -> i32 {
        if fiscal && start > 1 { start as i32 - 1 - 12 } else { 0 }
    }

    /// The period's first month, counted in months since year 0, for a
    /// fiscal year starting in month `start`.
    fn first_month(&self, start: u32) -> i32 {
        let months = self.cadence().months();
        self.year * 12 + (self.index as i32 - 1) * months + Cycle::shift(self.fiscal, start)
    }

    fn from_month(fiscal: bool, cadence: Cadence, month: i32, start: u32) -> Cycle {
        let nominal = month - Cycle::shift(fiscal, start);
        let (year, in_year) = (nominal.div_euclid(12), nominal.rem_euclid(12));
        Cycle::new(fiscal, cadence, year, (in_year / cadence.months()) as u32 + 1)
    }

    fn start_in(&self, start: u32) -> NaiveDate {
        let m = self.first_month(start);
        NaiveDate::from_ymd_opt(m.div_euclid(12), m.rem_euclid(12) as u32 + 1, 1).expect("validated cycle")
    }

    fn step(&self, periods: i32) -> Cycle {
        // Stepping never depends on the calendar: any start month serves.
        let month = self.first_month(1) + periods * self.cadence().months();
        Cycle::from_month(self.fiscal, self.cadence(), month, 1)
    }

    fn containing_in(cadence: Cadence, date: NaiveDate, start: u32) -> Cycle {
        Cycle::from_month(start > 1, cadence, date.year() * 12 + date.month0() as i32, start)
    }

    /// The first day of the period.
    pub fn start(&self) -> NaiveDate {
        self.start_in(fiscal_year_start())
    }

    /// The period's last day: the cycle's default `as_of`.
    pub fn as_of(&self) -> NaiveDate {
        self.next().start().pred_opt().expect("date in range")
    }

    pub fn next(&self) -> Cycle {
        self.step(1)
    }

    pub fn previous(&self) -> Cycle {
        self.step(-1)
    }

    /// The cycle of the given cadence, in the calendar in force, that
    /// contains `date`.
    pub fn containing(cadence: Cadence, date: NaiveDate) -> Cycle {
        Cycle::containing_in(cadence, date, fiscal_year_start())
    }

    /// The latest cycle of `cadence` whose last day is on or before `date`:
    /// the latest cycle that data reaching `date` covers completely.
    pub fn latest_complete(cadence: Cadence, date: NaiveDate) -> Cycle {
        let containing = Cycle::containing(cadence, date);
        if containing.as_of() == date {
            containing
        } else {
            containing.previous()
        }
    }

    /// Parses `FROM..TO` into every cycle from FROM to TO inclusive.
    pub fn parse_range(range: &str) -> Result<Vec<Cycle>, String> {
        let (from, to) = range
            .split_once("..")
            .ok_or_else(|| format!("cycle range `{range}` must look like `2025-Q1..2026-Q4`"))?;
        let (from, to): (Cycle, Cycle) = (from.parse()?, to.parse()?);
        if from.cadence() != to.cadence() || from.fiscal != to.fiscal {
            return Err(format!(
                "cycle range `{range}` mixes a {} and a {} cycle",
                from.describe(),
                to.describe()
            ));
        }
        if from > to {
            return Err(format!("cycle range `{range}` ends before it starts"));
        }
        let mut cycles = vec![from];
        while *cycles.last().expect("non-empty") < to {
            cycles.push(cycles.last().expect("non-empty").next());
        }
        Ok(cycles)
    }

    /// `quarter`, `fiscal quarter`, ...: for messages.
    pub fn describe(&self) -> String {
        if self.fiscal {
            format!("fiscal {}", self.cadence().name())
        } else {
            self.cadence().name().to_string()
        }
    }
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fy = if self.fiscal { "FY" } else { "" };
        let (y, i) = (self.year, self.index);
        match (self.cadence(), self.fiscal) {
            (Cadence::Year, _) => write!(f, "{fy}{y:04}"),
            (Cadence::Half, _) => write!(f, "{fy}{y:04}-H{i}"),
            (Cadence::Quarter, _) => write!(f, "{fy}{y:04}-Q{i}"),
            (Cadence::Month, false) => write!(f, "{y:04}-{i:02}"),
            (Cadence::Month, true) => write!(f, "FY{y:04}-M{i:02}"),
        }
    }
}

impl FromStr for Cycle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{s}` is not a cycle id: use a year `2026`, a half `2026-H2`, \
                 a quarter `2026-Q4` or a month `2026-11` (fiscal periods: `FY2027`, \
                 `FY2027-H1`, `FY2027-Q1`, `FY2027-M01`)"
            )
        };
        let year = |y: &str| -> Result<i32, String> {
            if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) {
                y.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let number = |n: &str, max: u32| -> Result<u32, String> {
            match n.parse::<u32>() {
                Ok(v) if (1..=max).contains(&v) && n.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
                _ => Err(bad()),
            }
        };
        let (fiscal, id) = match s.strip_prefix("FY") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        match id.split_once('-') {
            None => Ok(Cycle::new(fiscal, Cadence::Year, year(id)?, 1)),
            Some((y, rest)) => {
                let y = year(y)?;
                if let Some(q) = rest.strip_prefix('Q') {
                    Ok(Cycle::new(fiscal, Cadence::Quarter, y, number(q, 4)?))
                } else if let Some(h) = rest.strip_prefix('H') {
                    Ok(Cycle::new(fiscal, Cadence::Half, y, number(h, 2)?))
                } else if let (Some(m), true) = (rest.strip_prefix('M'), fiscal) {
                    (m.len() == 2).then_some(()).ok_or_else(bad)?;
                    Ok(Cycle::new(true, Cadence::Month, y, number(m, 12)?))
                } else if rest.len() == 2 && !fiscal {
                    Ok(Cycle::new(false, Cadence::Month, y, number(rest, 12)?))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn as_of_is_the_last_day_of_the_period() {
        let cases = [
            ("2026-Q4", "2026-12-31"),
            ("2026-Q1", "2026-03-31"),
            ("2024-Q1", "2024-03-31"),
            ("2026-H1", "2026-06-30"),
            ("2026-H2", "2026-12-31"),
            ("2024-02", "2024-02-29"),
            ("2026-11", "2026-11-30"),
            ("2026", "2026-12-31"),
        ];
        for (id, as_of) in cases {
            let cycle: Cycle = id.parse().unwrap();
            assert_eq!(cycle.as_of(), date(as_of), "{id}");
            assert_eq!(cycle.to_string(), id);
        }
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "2026-Q5",
            "2026-Q0",
            "2026-H3",
            "2026-13",
            "2026-1",
            "26-Q1",
            "2026-q4",
            "2026/Q4",
            "../2026",
            "2026-Q4/..",
            "2026-Q+1",
            "2026-00",
            "２０２６",
        ] {
            assert!(bad.parse::<Cycle>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn latest_complete_cycle() {
        let q = Cadence::Quarter;
        assert_eq!(Cycle::latest_complete(q, date("2026-09-30")).to_string(), "2026-Q3");
        assert_eq!(Cycle::latest_complete(q, date("2026-09-29")).to_string(), "2026-Q2");
        assert_eq!(
            Cycle::latest_complete(Cadence::Month, date("2026-01-15")).to_string(),
            "2025-12"
        );
    }

    #[test]
    fn fiscal_periods_are_named_by_the_year_they_end_in() {
        let feb = 2;
        let cases = [
            ("FY2027-Q1", "2026-02-01", "2026-04-30"),
            ("FY2027-Q4", "2026-11-01", "2027-01-31"),
            ("FY2027-H2", "2026-08-01", "2027-01-31"),
            ("FY2027", "2026-02-01", "2027-01-31"),
            ("FY2027-M01", "2026-02-01", "2026-02-28"),
            ("FY2027-M12", "2027-01-01", "2027-01-31"),
        ];
        for (id, first, last) in cases {
            let cycle: Cycle = id.parse().unwrap();
            assert!(cycle.is_fiscal());
            assert_eq!(cycle.to_string(), id);
            assert_eq!(cycle.start_in(feb), date(first), "{id}");
            assert_eq!(cycle.next().start_in(feb).pred_opt().unwrap(), date(last), "{id}");
            assert_eq!(Cycle::containing_in(cycle.cadence(), date(first), feb), cycle, "{id}");
            assert_eq!(Cycle::containing_in(cycle.cadence(), date(last), feb), cycle, "{id}");
        }
        let q: Cycle = "FY2027-Q1".parse().unwrap();
        assert_eq!(q.previous().to_string(), "FY2026-Q4");
        assert_eq!(q.next().to_string(), "FY2027-Q2");
        // A July start: FY2027 is July 2026 to June 2027.
        assert_eq!(
            Cycle::containing_in(Cadence::Quarter, date("2026-07-01"), 7).to_string(),
            "FY2027-Q1"
        );
        assert_eq!(
            Cycle::containing_in(Cadence::Quarter, date("2026-06-30"), 7).to_string(),
            "FY2026-Q4"
        );
        // The calendar is unchanged by a January start.
        assert_eq!(
            Cycle::containing_in(Cadence::Quarter, date("2026-02-01"), 1).to_string(),
            "2026-Q1"
        );
        for bad in [
            "FY2027-13",
            "FY2027-M13",
            "FY2027-M1",
            "FY27-Q1",
            "FYFY2027",
            "2027-M01",
        ] {
            assert!(bad.parse::<Cycle>().is_err(), "{bad:?} parsed");
        }
        assert!(Cycle::parse_range("FY2027-Q1..2027-Q2").is_err());
    }

    #[test]
    fn ranges() {
        let r = Cycle::parse_range("2025-Q3..2026-Q2").unwrap();
        let ids: Vec<String> = r.iter().map(|c| c.to_string()).collect();
        assert_eq!(ids, ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"]);
        assert!(Cycle::parse_range("2026-Q2..2025-Q3").is_err());
        assert!(Cycle::parse_range("2026-Q2..2026-11").is_err());
    }
}
