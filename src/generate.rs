//! Realistic synthetic accounts and daily usage, deterministic by seed:
//! heavy-tailed company sizes and ARR, partly missing wallets and NPS,
//! churned accounts, usage that grows or shrinks, and optionally quarterly
//! `snapshot_date` history. Each account draws from its own random stream,
//! so the output does not depend on how the work is chunked.

use std::fs::File;
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::cli::GenerateArgs;
use crate::error::{Context, Error, Result};

/// Accounts per usage file: about 4 million rows at 365 days. Groups are
/// generated in parallel, each into its own file, so the output does not
/// depend on the number of threads.
const ACCOUNTS_PER_FILE: usize = 20_000;

const INDUSTRIES: [&str; 8] = [
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Media",
    "Logistics",
    "Education",
];
const REGIONS: [&str; 4] = ["NA", "EMEA", "APAC", "LATAM"];
const NAME_A: [&str; 12] = [
    "Blue", "North", "Bright", "Iron", "Silver", "Rapid", "Quiet", "Golden", "Clear", "Prime", "Summit", "Harbor",
];
const NAME_B: [&str; 12] = [
    "Labs",
    "Systems",
    "Works",
    "Dynamics",
    "Partners",
    "Logistics",
    "Health",
    "Capital",
    "Foods",
    "Media",
    "Energy",
    "Retail",
];

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

fn days(d: NaiveDate) -> i32 {
    (d - epoch()).num_days() as i32
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// What an account is at the end of the generated period.
struct Account {
    id: String,
    name: String,
    industry: &'static str,
    region: &'static str,
    employees: f64,
    /// Yearly headcount growth.
    growth: f64,
    revenue_per_employee: f64,
    wallet_per_employee: f64,
    wallet_known: bool,
    share: f64,
    seat_price: f64,
    customer_since: NaiveDate,
    churned_on: Option<NaiveDate>,
    /// Quarterly ARR growth.
    arr_growth: f64,
    utilization: f64,
    /// Yearly usage trend.
    usage_trend: f64,
    events_per_user: f64,
}

impl Account {
    fn draw(seed: u64, index: u32, end: NaiveDate) -> Account {
        let mut rng = stream(seed, index as u64, 0);
        let employees = lognormal(&mut rng, 150.0, 1.6).clamp(3.0, 300_000.0).round();
        let growth = (0.06 + 0.18 * normal(&mut rng)).clamp(-0.5, 1.5);
        let tenure_days = rng.random_range(30..6 * 365);
        let customer_since = end - Duration::days(tenure_days);
        let churned_on = if rng.random::<f64>() < 0.10 {
            let earliest = (customer_since + Duration::days(90)).max(end - Duration::days(730));
            let span = (end - earliest).num_days();
            (span > 0).then(|| earliest + Duration::days(rng.random_range(0..span)))
        } else {
            None
        };
        Account {
            id: format!("A{:07}", index + 1),
            name: format!(
                "{} {} {}",
                NAME_A[rng.random_range(0..12)],
                NAME_B[rng.random_range(0..12)],
                index + 1
            ),
            industry: INDUSTRIES[rng.random_range(0..INDUSTRIES.len())],
            region: REGIONS[rng.random_range(0..REGIONS.len())],
            employees,
            growth,
            revenue_per_employee: lognormal(&mut rng, 180_000.0, 0.5),
            wallet_per_employee: lognormal(&mut rng, 220.0, 0.6),
            wallet_known: rng.random::<f64>() < 0.65,
            share: 0.02 + 0.93 * rng.random::<f64>().powf(1.8),
            seat_price: lognormal(&mut rng, 600.0, 0.3),
            customer_since,
            churned_on,
            arr_growth: (0.03 + 0.05 * normal(&mut rng)).clamp(-0.15, 0.25),
            utilization: rng.random_range(0.2..0.95),
            usage_trend: (0.4 * normal(&mut rng)).clamp(-0.9, 1.5),
            events_per_user: lognormal(&mut rng, 12.0, 0.4),
        }
    }

    /// The account's contract and company `quarters_back` quarters before the end.
    fn state(&self, quarters_back: i32) -> (f64, f64, f64, i64) {
        let employees = (self.employees / (1.0 + self.growth).powf(quarters_back as f64 / 4.0))
            .round()
            .max(1.0);
        let wallet = employees * self.wallet_per_employee;
        let arr_now = (self.employees * self.wallet_per_employee * self.share).max(1200.0);
        let arr = (arr_now / (1.0 + self.arr_growth).powi(quarters_back))
            .max(1200.0)
            .round();
        let seats = (arr / self.seat_price).round().max(3.0) as i64;
        (employees, wallet, arr, seats)
    }
}

/// An independent random stream per account and purpose.
fn stream(seed: u64, account: u64, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(account);
    rng
}

fn quarter_end_on_or_after(d: NaiveDate) -> NaiveDate {
    let q = crate::cycle::Cycle::containing(crate::cycle::Cadence::Quarter, d);
    q.as_of()
}

pub fn generate(args: &GenerateArgs) -> Result<()> {
    let end = NaiveDate::parse_from_str(&args.end, "%Y-%m-%d")
        .map_err(|_| Error::config(format!("--end `{}` is not a date: use YYYY-MM-DD", args.end)))?;
    if args.accounts == 0 || args.days == 0 {
        return Err(Error::config("--accounts and --days must be at least 1"));
    }
    let out = Path::new(&args.out);
    let occupied = std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some());
    if occupied && !args.force {
        return Err(Error::config(format!(
            "--out `{}` is not empty: generate writes accounts.parquet and usage/ there; choose an empty folder, or pass --force to replace them",
            args.out
        )));
    }
    let usage_dir = out.join("usage");
    std::fs::create_dir_all(&usage_dir).map_err(|e| Error::io("create", usage_dir.display(), e))?;
    // A rerun into the same folder must not leave files of a larger run.
    for entry in std::fs::read_dir(&usage_dir).map_err(|e| Error::io("list", usage_dir.display(), e))? {
        let path = entry.map_err(|e| Error::io("list", usage_dir.display(), e))?.path();
        if path.extension().is_some_and(|x| x == "parquet") {
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", path.display(), e))?;
        }
    }

    let accounts: Vec<Account> = (0..args.accounts).map(|i| Account::draw(args.seed, i, end)).collect();
    let mut frame = accounts_frame(&accounts, args, end)?;
    write(&mut frame, &out.join("accounts.parquet"))?;
    tracing::info!(rows = frame.height(), "wrote accounts");

    let start = end - Duration::days(args.days as i64 - 1);
    let ids = frame
        .column("account_id")
        .ctx(|| "cannot generate the `account_id` column".into())?
        .as_materialized_series()
        .unique_stable()
        .ctx(|| "cannot generate the `account_id` column".into())?;
    let groups: Vec<&[Account]> = accounts.chunks(ACCOUNTS_PER_FILE).collect();
    let rows: usize = groups
        .par_iter()
        .enumerate()
        .map(|(g, group)| {
            let mut chunk = UsageChunk::default();
            for (j, a) in group.iter().enumerate() {
                chunk.add((g * ACCOUNTS_PER_FILE + j) as u32, a, args.seed, start, end);
            }
            let rows = chunk.len();
            chunk.write(&ids, &usage_dir.join(format!("part-{g:05}.parquet")))?;
            Ok(rows)
        })
        .collect::<Result<Vec<usize>>>()?
        .into_iter()
        .sum();
    let files = groups.len();
    tracing::info!(rows, files, "wrote usage");
    crate::outln!(
        "wrote {} accounts ({} rows) and {rows} usage rows in {files} file(s) to {}",
        accounts.len(),
        frame.height(),
        out.display()
    );
    Ok(())
}

fn accounts_frame(accounts: &[Account], args: &GenerateArgs, end: NaiveDate) -> Result<DataFrame> {
    let mut c = AccountColumns::default();
    for (i, a) in accounts.iter().enumerate() {
        let mut rng = stream(args.seed, i as u64, 1);
        let renewal = {
            let mut r = a.customer_since;
            while r <= end {
                r = r.with_year(r.year() + 1).unwrap_or(r + Duration::days(365));
            }
            r
        };
        if args.history {
            // A row at every quarter end from onboarding on; a churned
            // account's last row is the first quarter end after it left.
            let mut date = quarter_end_on_or_after(a.customer_since);
            let last = a
                .churned_on
                .map_or(end, |c| quarter_end_on_or_after(c).min(end))
                .max(date);
            let final_quarter = quarter_end_on_or_after(end);
            while date <= last {
                let back = quarters_between(date, final_quarter);
                let churned = a.churned_on.filter(|c| *c <= date);
                c.push(a, a.state(back), Some(date), churned, renewal, &mut rng);
                date = quarter_end_on_or_after(date + Duration::days(1));
            }
        } else {
            c.push(a, a.state(0), None, a.churned_on, renewal, &mut rng);
        }
    }
    c.finish(args.history)
}

/// Whole quarters from quarter end `a` to quarter end `b`.
fn quarters_between(a: NaiveDate, b: NaiveDate) -> i32 {
    (b.year() - a.year()) * 4 + (b.month() as i32 - a.month() as i32) / 3
}

#[derive(Default)]
struct AccountColumns {
    id: Vec<String>,
    name: Vec<String>,
    industry: Vec<&'static str>,
    region: Vec<&'static str>,
    plan: Vec<&'static str>,
    arr: Vec<f64>,
    customer_since: Vec<i32>,
    churned_on: Vec<Option<i32>>,
    wallet: Vec<Option<f64>>,
    employees: Vec<i64>,
    employees_prior: Vec<i64>,
    annual_revenue: Vec<f64>,
    seats: Vec<i64>,
    nps: Vec<Option<i64>>,
    renewal_date: Vec<i32>,
    snapshot_date: Vec<Option<i32>>,
}

impl AccountColumns {
    fn push(
        &mut self,
        a: &Account,
        (employees, wallet, arr, seats): (f64, f64, f64, i64),
        snapshot_date: Option<NaiveDate>,
        churned_on: Option<NaiveDate>,
        renewal: NaiveDate,
        rng: &mut ChaCha8Rng,
    ) {
        self.id.push(a.id.clone());
        self.name.push(a.name.clone());
        self.industry.push(a.industry);
        self.region.push(a.region);
        self.plan.push(if arr < 15_000.0 {
            "starter"
        } else if arr < 100_000.0 {
            "pro"
        } else {
            "enterprise"
        });
        self.arr.push(arr);
        self.customer_since.push(days(a.customer_since));
        self.churned_on.push(churned_on.map(days));
        self.wallet.push(a.wallet_known.then_some(wallet.round()));
        self.employees.push(employees as i64);
        self.employees_prior
            .push(((employees / (1.0 + a.growth)).round() as i64).max(1));
        self.annual_revenue.push((employees * a.revenue_per_employee).round());
        self.seats.push(seats);
        // Detractors are likelier where usage is shrinking.
        let nps = (rng.random::<f64>() < 0.6).then(|| {
            let base = 7.5 + 2.0 * a.usage_trend + 1.8 * normal(rng);
            base.round().clamp(0.0, 10.0) as i64
        });
        self.nps.push(nps);
        self.renewal_date.push(days(renewal));
        self.snapshot_date.push(snapshot_date.map(days));
    }

    fn finish(self, history: bool) -> Result<DataFrame> {
        let date = |name: &str, v: Vec<i32>| Series::new(name.into(), v).cast(&DataType::Date);
        let opt_date = |name: &str, v: Vec<Option<i32>>| Series::new(name.into(), v).cast(&DataType::Date);
        let mut columns: Vec<Column> = vec![
            Series::new("account_id".into(), self.id).into(),
            Series::new("account_name".into(), self.name).into(),
            Series::new("industry".into(), self.industry).into(),
            Series::new("region".into(), self.region).into(),
            Series::new("plan".into(), self.plan).into(),
            Series::new("arr".into(), self.arr).into(),
            date("customer_since", self.customer_since)
                .ctx(|| "cannot generate the `customer_since` column".into())?
                .into(),
            opt_date("churned_on", self.churned_on)
                .ctx(|| "cannot generate the `churned_on` column".into())?
                .into(),
            Series::new("wallet".into(), self.wallet).into(),
            Series::new("employees".into(), self.employees).into(),
            Series::new("employees_prior".into(), self.employees_prior).into(),
            Series::new("annual_revenue".into(), self.annual_revenue).into(),
            Series::new("seats".into(), self.seats).into(),
            Series::new("nps".into(), self.nps).into(),
            date("renewal_date", self.renewal_date)
                .ctx(|| "cannot generate the `renewal_date` column".into())?
                .into(),
        ];
        if history {
            columns.insert(
                1,
                opt_date("snapshot_date", self.snapshot_date)
                    .ctx(|| "cannot generate the `snapshot_date` column".into())?
                    .into(),
            );
        }
        DataFrame::new_infer_height(columns).ctx(|| "cannot generate the accounts".into())
    }
}

#[derive(Default)]
struct UsageChunk {
    /// Index of the account: ids are gathered once, when the chunk is written.
    account: Vec<IdxSize>,
    date: Vec<i32>,
    active_users: Vec<i64>,
    events: Vec<i64>,
}

impl UsageChunk {
    fn len(&self) -> usize {
        self.date.len()
    }

    fn add(&mut self, index: u32, a: &Account, seed: u64, start: NaiveDate, end: NaiveDate) {
        let mut rng = stream(seed, index as u64, 2);
        let (_, _, _, seats) = a.state(0);
        let first = start.max(a.customer_since);
        let last = a.churned_on.map_or(end, |c| (c - Duration::days(1)).min(end));
        let mut d = first;
        let span = (end - start).num_days().max(1) as f64;
        while d <= last {
            let weekend = d.weekday().number_from_monday() >= 6;
            let p = (0.55 + 0.4 * a.utilization) * if weekend { 0.3 } else { 1.0 };
            if rng.random::<f64>() < p {
                let t = (d - start).num_days() as f64 / span - 0.5;
                let level = a.utilization * (1.0 + a.usage_trend * t).max(0.05);
                let noise = rng.random_range(0.85..1.15);
                let users = ((seats as f64) * level * noise).round().max(1.0) as i64;
                let events = (users as f64 * a.events_per_user * rng.random_range(0.7..1.3)).round() as i64;
                self.account.push(index as IdxSize);
                self.date.push(days(d));
                self.active_users.push(users);
                self.events.push(events);
            }
            d += Duration::days(1);
        }
    }

    fn write(&mut self, ids: &Series, path: &Path) -> Result<()> {
        let chunk = std::mem::take(self);
        let account_id = ids
            .take(&IdxCa::from_vec("account_id".into(), chunk.account))
            .ctx(|| "cannot generate the `account_id` column".into())?;
        let date = Series::new("date".into(), chunk.date)
            .cast(&DataType::Date)
            .ctx(|| "cannot generate the `date` column".into())?;
        let mut frame = DataFrame::new_infer_height(vec![
            account_id.into(),
            date.into(),
            Series::new("active_users".into(), chunk.active_users).into(),
            Series::new("events".into(), chunk.events).into(),
        ])
        .ctx(|| "cannot generate the usage".into())?;
        write(&mut frame, path)
    }
}

fn write(frame: &mut DataFrame, path: &Path) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io("create", path.display(), e))?;
    ParquetWriter::new(file)
        .with_statistics(StatisticsOptions::full())
        .finish(frame)
        .ctx(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}
