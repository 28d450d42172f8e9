//! Scans of the two input datasets, and the schema checks at the boundary:
//! after [`scan_accounts`] and [`scan_usage`] every column has the name and
//! type the rest of the pipeline expects.

use polars::prelude::*;

use crate::config::{ACCOUNT_COLUMNS, Dataset, Input, Pipeline};
use crate::error::{Context, Error, Result, SchemaError};
use crate::expr::Type;
use crate::storage::{InputFile, StorageOptions, polars_cloud_options, resolve_input};

/// An input dataset scanned: its files and a lazy scan with checked columns.
pub struct Scan {
    pub dataset: Dataset,
    pub uri: String,
    pub files: Vec<InputFile>,
    pub frame: LazyFrame,
    /// The columns of the data, after mapping to our names.
    pub columns: Vec<String>,
    /// Those of [`Scan::columns`] that the data has (the others were
    /// added as nulls).
    pub in_data: Vec<String>,
    /// The data's own names of the columns read, for re-reading one file.
    source_columns: Vec<String>,
    /// Of each column in [`Scan::columns`] that the data has: the data's
    /// own name and type, from which another engine conforms it the same way.
    pub sources: Vec<SourceColumn>,
    options: StorageOptions,
}

impl Scan {
    /// The first and the last date of the dataset's `date` column (the
    /// usage), in one pass.
    pub fn span(&self) -> Result<crate::plan::UsageSpan> {
        let frame = self
            .frame
            .clone()
            .select([col("date").min().alias("first"), col("date").max().alias("last")])
            .collect_with_engine(Engine::Streaming)
            .map(|r| r.unwrap_single())
            .map_err(|e| self.read_error(e))?;
        let day = |name: &str| -> Result<chrono::NaiveDate> {
            let value = frame
                .column(name)
                .and_then(|c| c.get(0))
                .ctx(|| format!("cannot read usage dates of `{}`", self.uri))?;
            let AnyValue::Date(days) = value else {
                return Err(SchemaError::NoDatedUsage { uri: self.uri.clone() }.into());
            };
            Ok(crate::cycle::from_epoch_days(days))
        };
        Ok(crate::plan::UsageSpan {
            first: day("first")?,
            last: day("last")?,
        })
    }

    /// The newest `snapshot_date` on or before `as_of` of a point-in-time
    /// accounts history; `None` without such a column or such a row.
    pub fn newest_snapshot(&self, as_of: chrono::NaiveDate) -> Result<Option<chrono::NaiveDate>> {
        if !self.columns.iter().any(|c| c == "snapshot_date") {
            return Ok(None);
        }
        let frame = self
            .frame
            .clone()
            .filter(col("snapshot_date").lt_eq(lit(as_of)))
            .select([col("snapshot_date").max()])
            .collect_with_engine(Engine::Streaming)
            .map(|r| r.unwrap_single())
            .map_err(|e| self.read_error(e))?;
        match frame.column("snapshot_date").and_then(|c| c.get(0)) {
            Ok(AnyValue::Date(days)) => Ok(Some(crate::cycle::from_epoch_days(days))),
            _ => Ok(None),
        }
    }

    /// The storage options the dataset is read with.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// Turns a failure to read the dataset into an error that names the
    /// file at fault: each file is read alone until one fails.
    pub fn read_error(&self, error: PolarsError) -> Error {
        for file in &self.files {
            let columns: Vec<Expr> = self.source_columns.iter().map(|c| col(c.as_str())).collect();
            let alone = scan_files(std::slice::from_ref(file), &self.options).and_then(|lf| {
                lf.select(columns)
                    .collect()
                    .ctx(|| format!("cannot read `{}`", file.uri))
            });
            if let Err(e) = alone {
                return SchemaError::Unreadable {
                    dataset: self.dataset.to_string(),
                    file: file.uri.clone(),
                    cause: first_line(&e.to_string()).to_string(),
                }
                .into();
            }
        }
        Error::Polars {
            context: format!("cannot read {} `{}`", self.dataset, self.uri),
            source: error,
        }
    }
}

/// A column as the data has it, under our name.
#[derive(Debug, Clone)]
pub struct SourceColumn {
    pub name: String,
    pub source: String,
    pub found: DataType,
    /// The type [`Scan::frame`] gives it.
    pub conformed: DataType,
}

fn scan_files(files: &[InputFile], options: &StorageOptions) -> Result<LazyFrame> {
    let paths: Vec<PlRefPath> = files.iter().map(|f| PlRefPath::new(f.uri.as_str())).collect();
    let args = ScanArgsParquet {
        cloud_options: polars_cloud_options(&files[0].uri, options)?,
        hive_options: HiveOptions {
            enabled: Some(true),
            hive_start_idx: 0,
            schema: None,
            try_parse_dates: true,
        },
        ..Default::default()
    };
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args).ctx(|| format!("cannot scan {}", files[0].uri))
}

/// Reads each file's schema, so that a bad file is named, and returns the
/// schema they share.
fn file_schemas(dataset: Dataset, files: &[InputFile], options: &StorageOptions) -> Result<Schema> {
    let mut first: Option<(String, Schema)> = None;
    for file in files {
        let mut lf = scan_files(std::slice::from_ref(file), options)?;
        let schema = lf.collect_schema().map_err(|e| SchemaError::NotParquet {
            dataset: dataset.to_string(),
            file: file.uri.clone(),
            cause: first_line(&e.to_string()).to_string(),
        })?;
        match &first {
            None => first = Some((file.uri.clone(), (*schema).clone())),
            Some((first_uri, first_schema)) => {
                for (name, dtype) in first_schema.iter() {
                    match schema.get(name) {
                        Some(other) if other != dtype && !(other.is_numeric() && dtype.is_numeric()) => {
                            return Err(SchemaError::FilesDisagree {
                                dataset: dataset.to_string(),
                                file: file.uri.clone(),
                                column: name.to_string(),
                                found: other.to_string(),
                                expected: dtype.to_string(),
                                first_file: first_uri.clone(),
                            }
                            .into());
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(first.expect("resolve_input returns at least one file").1)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// What the pipeline needs of one column, and how to make the data fit.
fn conform(dataset: Dataset, file: &str, column: &str, want: Type, found: &DataType, names: &[String]) -> Result<Expr> {
    let c = col(column);
    let bad = |expected: &str, hint: &str| -> Error {
        SchemaError::WrongType {
            dataset: dataset.to_string(),
            file: file.to_string(),
            column: column.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
            hint: hint.to_string(),
            columns: names.to_vec(),
        }
        .into()
    };
    Ok(match want {
        Type::Num => {
            if found.is_integer() {
                c.cast(DataType::Int64)
            } else if found.is_float() || found.is_decimal() || found.is_null() {
                c.cast(DataType::Float64)
            } else {
                return Err(bad("a number", ""));
            }
        }
        Type::Date => match found {
            DataType::Date => c,
            DataType::Datetime(..) => c.cast(DataType::Date),
            DataType::Null => c.cast(DataType::Date),
            DataType::String => {
                return Err(bad("a date", " (store dates as Parquet DATE, not text)"));
            }
            _ => return Err(bad("a date", "")),
        },
        Type::Str => match found {
            DataType::String => c,
            t if t.is_integer() => c.cast(DataType::String),
            _ => return Err(bad("a string", "")),
        },
        Type::Bool | Type::Null | Type::Any => c,
    })
}

/// The type [`conform`] makes of a column it accepts.
fn conformed(want: Type, found: &DataType) -> DataType {
    match want {
        Type::Num if found.is_integer() => DataType::Int64,
        Type::Num => DataType::Float64,
        Type::Date => DataType::Date,
        Type::Str => DataType::String,
        Type::Bool | Type::Null | Type::Any => found.clone(),
    }
}

fn renamed(input: &Input, schema: &Schema, dataset: Dataset, file: &str) -> Result<(Vec<Expr>, Vec<String>)> {
    // Our name for each column of the data.
    let ours = |theirs: &str| -> String {
        input
            .columns
            .iter()
            .find(|(_, t)| t.as_str() == theirs)
            .map(|(o, _)| o.clone())
            .unwrap_or_else(|| theirs.to_string())
    };
    let mut exprs = Vec::new();
    let mut names = Vec::new();
    for (ours_name, theirs) in &input.columns {
        if schema.get(theirs).is_none() {
            let existing: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
            let help = crate::error::did_you_mean(theirs, existing.iter().copied())
                .map(|h| format!("\n  help: {h}"))
                .unwrap_or_default();
            return Err(SchemaError::MappedColumnMissing {
                dataset: dataset.to_string(),
                file: file.to_string(),
                column: theirs.clone(),
                mapped_to: ours_name.clone(),
                help,
                columns: existing.iter().map(|c| c.to_string()).collect(),
            }
            .into());
        }
    }
    for name in schema.iter_names() {
        let o = ours(name);
        if names.contains(&o) {
            return Err(SchemaError::DuplicateColumn {
                dataset: dataset.to_string(),
                file: file.to_string(),
                column: o,
            }
            .into());
        }
        exprs.push(col(name.as_str()).alias(o.as_str()));
        names.push(o);
    }
    Ok((exprs, names))
}

/// The accounts dataset, with the columns the pipeline uses conformed to
/// their types. Optional standard columns that the data lacks are added as
/// nulls (a warning says so).
pub fn scan_accounts(pipeline: &Pipeline, uri: &str) -> Result<Scan> {
    let dataset = Dataset::Accounts;
    let opened = open(dataset, uri, &pipeline.accounts, pipeline)?;
    let (file, names, mapped) = (opened.files[0].uri.as_str(), &opened.names, &opened.mapped);

    // Every standard column, so that the data checks and point-in-time
    // selection can rely on them; absent optional ones are null.
    let mut needed: Vec<(String, Type, bool)> = ACCOUNT_COLUMNS
        .iter()
        .map(|(n, t, r)| (n.to_string(), *t, *r))
        .collect();
    for (name, ty) in &pipeline.account_columns {
        if !needed.iter().any(|(n, _, _)| n == name) {
            let standard = ACCOUNT_COLUMNS.iter().any(|(n, _, _)| n == name);
            needed.push((name.clone(), *ty, !standard));
        }
    }
    for p in &pipeline.passthrough {
        if !needed.iter().any(|(n, _, _)| n == p) {
            needed.push((p.clone(), Type::Any, true));
        }
    }

    let mut exprs = Vec::new();
    let mut columns = Vec::new();
    for (name, ty, required) in &needed {
        match mapped.get(name) {
            Some(found) => {
                exprs.push(conform(dataset, file, name, *ty, found, names)?);
                columns.push(name.clone());
            }
            None if *required => {
                let source = pipeline.accounts.source_name(name);
                let passthrough = pipeline.passthrough.iter().any(|p| p == name)
                    && !pipeline.account_columns.iter().any(|(n, _)| n == name);
                let (why, fix) = if passthrough {
                    (
                        ", listed in [output] passthrough",
                        "fix the name in [output] passthrough, or map it in [inputs.accounts] columns",
                    )
                } else {
                    ("", "map it in [inputs.accounts] columns")
                };
                let help = crate::error::did_you_mean(source, names.iter().map(String::as_str))
                    .map(|h| format!("\n  help: {h} ({fix})"))
                    .unwrap_or_default();
                return Err(SchemaError::MissingColumn {
                    dataset: Dataset::Accounts.to_string(),
                    file: file.to_string(),
                    column: source.to_string(),
                    expected: type_name(*ty).to_string(),
                    why: why.to_string(),
                    help,
                    columns: names.to_vec(),
                }
                .into());
            }
            None => {
                let optional_but_used = pipeline.account_columns.iter().any(|(n, _)| n == name);
                if optional_but_used {
                    tracing::warn!(column = %name, file, "accounts have no `{name}` column: it is null for every account");
                }
                let dtype = match ty {
                    Type::Date => DataType::Date,
                    Type::Str => DataType::String,
                    _ => DataType::Float64,
                };
                exprs.push(lit(NULL).cast(dtype).alias(name.as_str()));
                columns.push(name.clone());
            }
        }
    }
    finish(dataset, uri, opened, exprs, columns, &pipeline.accounts, pipeline)
}

/// A dataset's files, the schema they share, and its columns under our
/// names.
struct Opened {
    files: Vec<InputFile>,
    schema: Schema,
    renames: Vec<Expr>,
    names: Vec<String>,
    mapped: Schema,
}

fn open(dataset: Dataset, uri: &str, input: &Input, pipeline: &Pipeline) -> Result<Opened> {
    let files = resolve_input(dataset.name(), uri, &pipeline.storage)?;
    let schema = file_schemas(dataset, &files, &pipeline.storage)?;
    let (renames, names) = renamed(input, &schema, dataset, &files[0].uri)?;
    let mapped: Schema = names
        .iter()
        .zip(schema.iter_values())
        .map(|(n, t)| Field::new(n.as_str().into(), t.clone()))
        .collect();
    Ok(Opened {
        files,
        schema,
        renames,
        names,
        mapped,
    })
}

/// The checked scan of a dataset: its columns renamed, then conformed.
fn finish(
    dataset: Dataset,
    uri: &str,
    opened: Opened,
    exprs: Vec<Expr>,
    columns: Vec<String>,
    input: &Input,
    pipeline: &Pipeline,
) -> Result<Scan> {
    let frame = scan_files(&opened.files, &pipeline.storage)?
        .select(opened.renames)
        .select(exprs);
    let source_columns = present(&columns, input, &opened.schema);
    let in_data = columns
        .iter()
        .filter(|c| opened.schema.get(input.source_name(c)).is_some())
        .cloned()
        .collect();
    Ok(Scan {
        dataset,
        uri: uri.to_string(),
        files: opened.files,
        frame,
        columns,
        in_data,
        source_columns,
        sources: Vec::new(),
        options: pipeline.storage.clone(),
    })
}

/// The data's names of the columns that exist in it.
fn present(columns: &[String], input: &Input, schema: &Schema) -> Vec<String> {
    columns
        .iter()
        .map(|c| input.source_name(c).to_string())
        .filter(|c| schema.get(c).is_some())
        .collect()
}

fn type_name(ty: Type) -> &'static str {
    match ty {
        Type::Num => "a number",
        Type::Str => "a string",
        Type::Date => "a date",
        Type::Bool => "a boolean",
        _ => "any type",
    }
}

/// The usage dataset: `account_id`, `date` and the metrics the aggregates
/// read, with timestamps truncated to dates.
pub fn scan_usage(pipeline: &Pipeline, uri: &str) -> Result<Scan> {
    let dataset = Dataset::Usage;
    let opened = open(dataset, uri, &pipeline.usage, pipeline)?;
    let (file, names, mapped) = (opened.files[0].uri.as_str(), &opened.names, &opened.mapped);
    let mut needed = vec![("account_id".to_string(), Type::Str), ("date".to_string(), Type::Date)];
    let mut sources = Vec::new();
    for c in pipeline.usage_columns() {
        needed.push((c.to_string(), Type::Num));
    }
    let mut exprs = Vec::new();
    let mut columns = Vec::new();
    for (name, ty) in &needed {
        let Some(found) = mapped.get(name) else {
            let source = pipeline.usage.source_name(name);
            let used_by: Vec<&str> = pipeline
                .aggregates
                .iter()
                .filter(|a| &a.column == name)
                .map(|a| a.name.as_str())
                .collect();
            let why = if used_by.is_empty() {
                String::new()
            } else {
                format!(", used by aggregate {}", used_by.join(", "))
            };
            let help = crate::error::did_you_mean(source, names.iter().map(String::as_str))
                .map(|h| format!("\n  help: {h} (map it in [inputs.usage] columns)"))
                .unwrap_or_default();
            return Err(SchemaError::MissingColumn {
                dataset: Dataset::Usage.to_string(),
                file: file.to_string(),
                column: source.to_string(),
                expected: type_name(*ty).to_string(),
                why,
                help,
                columns: names.to_vec(),
            }
            .into());
        };
        exprs.push(conform(dataset, file, name, *ty, found, names)?);
        columns.push(name.clone());
        sources.push(SourceColumn {
            name: name.clone(),
            source: pipeline.usage.source_name(name).to_string(),
            found: found.clone(),
            conformed: conformed(*ty, found),
        });
    }
    let mut usage = finish(dataset, uri, opened, exprs, columns, &pipeline.usage, pipeline)?;
    usage.sources = sources;
    Ok(usage)
}
