//! Review cycles: ids such as `2026-Q4`, `2026-H2`, `2026-11` and `2026`, the
//! period each names, and its `as_of` date (the period's last day).

use std::fmt;
use std::str::FromStr;

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

/// One review period. Only these four forms exist, so a cycle id can never
/// carry a path character into an object key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cycle {
    Year(i32),
    Half(i32, u32),
    Quarter(i32, u32),
    Month(i32, u32),
}

impl Cycle {
    pub fn cadence(&self) -> Cadence {
        match self {
            Cycle::Year(_) => Cadence::Year,
            Cycle::Half(..) => Cadence::Half,
            Cycle::Quarter(..) => Cadence::Quarter,
            Cycle::Month(..) => Cadence::Month,
        }
    }

    /// The first day of the period.
    pub fn start(&self) -> NaiveDate {
        let (year, month) = match *self {
            Cycle::Year(y) => (y, 1),
            Cycle::Half(y, h) => (y, 6 * (h - 1) + 1),
            Cycle::Quarter(y, q) => (y, 3 * (q - 1) + 1),
            Cycle::Month(y, m) => (y, m),
        };
        NaiveDate::from_ymd_opt(year, month, 1).expect("validated cycle")
    }

    /// The period's last day: the cycle's default `as_of`.
    pub fn as_of(&self) -> NaiveDate {
        self.next().start().pred_opt().expect("date in range")
    }

    pub fn next(&self) -> Cycle {
        match *self {
            Cycle::Year(y) => Cycle::Year(y + 1),
            Cycle::Half(y, 2) => Cycle::Half(y + 1, 1),
            Cycle::Half(y, h) => Cycle::Half(y, h + 1),
            Cycle::Quarter(y, 4) => Cycle::Quarter(y + 1, 1),
            Cycle::Quarter(y, q) => Cycle::Quarter(y, q + 1),
            Cycle::Month(y, 12) => Cycle::Month(y + 1, 1),
            Cycle::Month(y, m) => Cycle::Month(y, m + 1),
        }
    }

    /// The cycle of the given cadence that contains `date`.
    pub fn containing(cadence: Cadence, date: NaiveDate) -> Cycle {
        let (y, m) = (date.year(), date.month());
        match cadence {
            Cadence::Year => Cycle::Year(y),
            Cadence::Half => Cycle::Half(y, (m - 1) / 6 + 1),
            Cadence::Quarter => Cycle::Quarter(y, (m - 1) / 3 + 1),
            Cadence::Month => Cycle::Month(y, m),
        }
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

    pub fn previous(&self) -> Cycle {
        match *self {
            Cycle::Year(y) => Cycle::Year(y - 1),
            Cycle::Half(y, 1) => Cycle::Half(y - 1, 2),
            Cycle::Half(y, h) => Cycle::Half(y, h - 1),
            Cycle::Quarter(y, 1) => Cycle::Quarter(y - 1, 4),
            Cycle::Quarter(y, q) => Cycle::Quarter(y, q - 1),
            Cycle::Month(y, 1) => Cycle::Month(y - 1, 12),
            Cycle::Month(y, m) => Cycle::Month(y, m - 1),
        }
    }

    /// Parses `FROM..TO` into every cycle from FROM to TO inclusive.
    pub fn parse_range(range: &str) -> Result<Vec<Cycle>, String> {
        let (from, to) = range
            .split_once("..")
            .ok_or_else(|| format!("cycle range `{range}` must look like `2025-Q1..2026-Q4`"))?;
        let (from, to): (Cycle, Cycle) = (from.parse()?, to.parse()?);
        if from.cadence() != to.cadence() {
            return Err(format!(
                "cycle range `{range}` mixes a {:?} and a {:?} cycle",
                from.cadence(),
                to.cadence()
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
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cycle::Year(y) => write!(f, "{y:04}"),
            Cycle::Half(y, h) => write!(f, "{y:04}-H{h}"),
            Cycle::Quarter(y, q) => write!(f, "{y:04}-Q{q}"),
            Cycle::Month(y, m) => write!(f, "{y:04}-{m:02}"),
        }
    }
}

impl FromStr for Cycle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{s}` is not a cycle id: use a year `2026`, a half `2026-H2`, \
                 a quarter `2026-Q4` or a month `2026-11`"
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
        match s.split_once('-') {
            None => Ok(Cycle::Year(year(s)?)),
            Some((y, rest)) => {
                let y = year(y)?;
                if let Some(q) = rest.strip_prefix('Q') {
                    Ok(Cycle::Quarter(y, number(q, 4)?))
                } else if let Some(h) = rest.strip_prefix('H') {
                    Ok(Cycle::Half(y, number(h, 2)?))
                } else if rest.len() == 2 {
                    Ok(Cycle::Month(y, number(rest, 12)?))
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
    fn ranges() {
        let r = Cycle::parse_range("2025-Q3..2026-Q2").unwrap();
        let ids: Vec<String> = r.iter().map(|c| c.to_string()).collect();
        assert_eq!(ids, ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"]);
        assert!(Cycle::parse_range("2026-Q2..2025-Q3").is_err());
        assert!(Cycle::parse_range("2026-Q2..2026-11").is_err());
    }
}
