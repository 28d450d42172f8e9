//! One Delta Lake table in quadrant's store, through delta-rs: opening it on
//! the store quadrant already has, the files of a partition, and the one
//! kind of commit quadrant makes: replace a partition's files with a run's
//! (one commit of `remove` + `add`, an overwrite with the partition's
//! predicate), growing the table's schema when a pipeline adds columns.
//!
//! polars writes the Parquet files; delta-rs only commits them, so its
//! query engine (the `datafusion` feature) is not built.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Once};

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, DataType as DeltaType, MetadataExt, PrimitiveType, StructField, StructType};
use deltalake::logstore::{LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use polars::prelude::{DataFrame, DataType, IntoColumn, Schema, TimeUnit};
use url::Url;

use crate::error::{Error, Result, SnapshotError};
use crate::storage::{Store, block_on, enter_runtime};

/// Checkpoints every 10 commits, as Delta Lake itself does (delta-rs'
/// default is 100): a reader replays at most 9 JSON commits after the last
/// checkpoint.
const CHECKPOINT_INTERVAL: &str = "10";

/// Commits that lose to a commit of another partition are retried on the
/// new version; this many times at most.
const ATTEMPTS: usize = 20;

/// delta-rs knows how to commit on the local disk only unless a log store is
/// registered for a scheme. Every store quadrant opens offers create-if-absent
/// puts (S3 and Azure natively, GCS through preconditions), which is all
/// Delta's default log store needs: a commit is the create-only put of
/// `_delta_log/N.json`. No lock service is involved.
struct ConditionalPutLogStore;

impl LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

fn register_log_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let registry = deltalake::logstore::logstore_factories();
        for scheme in ["s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "adl"] {
            let url = Url::parse(&format!("{scheme}://")).expect("a scheme");
            registry.entry(url).or_insert_with(|| Arc::new(ConditionalPutLogStore));
        }
    });
}

/// A Delta table below the store's root, at `rel`.
pub struct Table<'a> {
    store: &'a Store,
    rel: String,
    table: DeltaTable,
    exists: bool,
    /// The tombstones of the loaded version, read once.
    tombstones: std::sync::OnceLock<BTreeSet<String>>,
}

/// A file's partition values, by column.
pub type PartitionValues = HashMap<String, Option<String>>;

/// A file a run wrote into a table's partition, to be committed.
pub struct NewFile {
    /// Relative to the table's root: `cycle=C/part-<run>.parquet`.
    pub path: String,
    pub size: u64,
    pub rows: u64,
}

/// A commit that found another writer's commit in its partition.
pub struct PartitionChanged;

fn delta_error(store: &Store, rel: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    SnapshotError::Delta {
        uri: store.uri_of(&store.path(rel)),
        source: e.into(),
    }
    .into()
}

/// The table's URL: delta-rs takes the store's path below its bucket (or
/// filesystem) root from it.
fn table_url(store: &Store, rel: &str) -> Result<Url> {
    let uri = store.uri_of(&store.path(rel));
    let url = if store.is_local() {
        Url::from_directory_path(&uri).map_err(|_| ())
    } else {
        Url::parse(&format!("{uri}/")).map_err(|_| ())
    };
    url.map_err(|()| Error::config(format!("`{uri}` cannot be a Delta table's location")))
}

/// Is there a Delta table (a `_delta_log/` with entries) at `rel`?
pub fn is_table(store: &Store, rel: &str) -> Result<bool> {
    Ok(!store.list(&store.path(&format!("{rel}/_delta_log")))?.is_empty())
}

impl<'a> Table<'a> {
    /// Opens the table at `rel` at its latest version, or a table that does
    /// not exist yet (created by its first commit).
    pub fn open(store: &'a Store, rel: &str) -> Result<Table<'a>> {
        let _runtime = enter_runtime();
        register_log_stores();
        let url = table_url(store, rel)?;
        let mut table = DeltaTableBuilder::from_url(url.clone())
            .and_then(|b| b.with_storage_backend(store.object_store(), url).build())
            .map_err(|e| delta_error(store, rel, e))?;
        let exists = is_table(store, rel)?;
        if exists {
            block_on(table.load()).map_err(|e| delta_error(store, rel, e))?;
        }
        Ok(Table {
            store,
            rel: rel.to_string(),
            table,
            exists,
            tombstones: Default::default(),
        })
    }

    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The table's path below the store's root.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    /// The path below the store's root of a path relative to the table.
    pub fn store_rel(&self, path: &str) -> String {
        format!("{}/{path}", self.rel)
    }

    fn error(&self, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        delta_error(self.store, &self.rel, e)
    }

    /// Every active file with its partition values, relative to the table.
    pub fn files(&self) -> Result<Vec<(String, PartitionValues)>> {
        let _runtime = enter_runtime();
        if !self.exists {
            return Ok(Vec::new());
        }
        let state = self.table.snapshot().map_err(|e| self.error(e))?;
        Ok(state
            .log_data()
            .iter()
            .map(|f| (f.path().into_owned(), f.partition_values_map()))
            .collect())
    }

    /// The active files of one partition, relative to the table.
    pub fn partition_files(&self, partition: &[(&str, &str)]) -> Result<BTreeSet<String>> {
        Ok(self
            .files()?
            .into_iter()
            .filter(|(_, values)| in_partition(values, partition))
            .map(|(path, _)| path)
            .collect())
    }

    /// Files that a version of the table still read (removed, but kept for
    /// time travel until their retention passes), relative to the table.
    pub fn tombstones(&self) -> Result<&BTreeSet<String>> {
        if let Some(known) = self.tombstones.get() {
            return Ok(known);
        }
        let _runtime = enter_runtime();
        if !self.exists {
            return Ok(self.tombstones.get_or_init(BTreeSet::new));
        }
        let state = self.table.snapshot().map_err(|e| self.error(e))?;
        let log_store = self.table.log_store();
        let removed: Vec<String> = block_on(
            state
                .all_tombstones(log_store.as_ref())
                .map_ok(|t| t.path().into_owned())
                .try_collect(),
        )
        .map_err(|e| self.error(e))?;
        Ok(self.tombstones.get_or_init(|| removed.into_iter().collect()))
    }

    fn reload(&mut self) -> Result<()> {
        let _runtime = enter_runtime();
        self.exists = is_table(self.store, &self.rel)?;
        self.tombstones = Default::default();
        if self.exists {
            let rel = self.rel.clone();
            block_on(self.table.load()).map_err(|e| delta_error(self.store, &rel, e))?;
        }
        Ok(())
    }

    /// Creates the table with the frame's columns and the partition columns.
    fn create(&mut self, columns: Vec<StructField>, partition_columns: &[&str]) -> Result<()> {
        let _runtime = enter_runtime();
        let created = block_on(
            CreateBuilder::new()
                .with_log_store(self.table.log_store())
                .with_columns(columns)
                .with_partition_columns(partition_columns.iter().map(|c| c.to_string()))
                .with_configuration_property(deltalake::TableProperty::CheckpointInterval, Some(CHECKPOINT_INTERVAL))
                .with_save_mode(SaveMode::Ignore)
                .into_future(),
        );
        // Another run created it first, or the store's answer to our
        // creation was lost: the table is there either way, and any
        // quadrant table grows to the columns a commit needs.
        let failed = created.err();
        self.reload()?;
        match failed {
            Some(e) if !self.exists => Err(self.error(e)),
            _ => Ok(()),
        }
    }

    /// Replaces the files of one partition with `files` in one commit (an
    /// append when the partition is empty, else an overwrite with the
    /// partition's predicate), with `info` in the commit's information.
    /// With `expected`, the commit is refused when the partition's files
    /// are no longer those (another writer committed there since they were
    /// read); commits of other partitions in between are no conflict.
    /// Returns the committed version.
    pub fn replace(
        &mut self,
        partition: &[(&str, &str)],
        files: &[NewFile],
        schema: &Schema,
        info: &HashMap<String, serde_json::Value>,
        expected: Option<&BTreeSet<String>>,
    ) -> Result<Result<u64, PartitionChanged>> {
        let _runtime = enter_runtime();
        let columns = delta_columns(schema, partition)?;
        let partition_columns: Vec<&str> = partition.iter().map(|(k, _)| *k).collect();
        if !self.exists {
            self.create(columns.clone(), &partition_columns)?;
        }
        let ours: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
        for _ in 0..ATTEMPTS {
            let current = self.partition_files(partition)?;
            if expected.is_some_and(|e| *e != current) {
                // Our own files active in the partition: an attempt of ours
                // that was answered with an error is committed.
                if !ours.is_empty() && current == ours {
                    tracing::warn!(table = %self.rel, "read back: this run's commit is in the table");
                    return Ok(Ok(self.version().unwrap_or_default()));
                }
                return Ok(Err(PartitionChanged));
            }
            let state = self.table.snapshot().map_err(|e| self.error(e))?;
            let mut actions = self.schema_actions(&columns)?;
            for f in state.log_data().iter() {
                if current.contains(f.path().as_ref()) {
                    actions.push(Action::Remove(f.remove_action(true)));
                }
            }
            let now = chrono::Utc::now().timestamp_millis();
            for f in files {
                actions.push(Action::Add(Add {
                    path: f.path.clone(),
                    partition_values: partition
                        .iter()
                        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                        .collect(),
                    size: f.size as i64,
                    modification_time: now,
                    data_change: true,
                    stats: Some(format!("{{\"numRecords\":{}}}", f.rows)),
                    tags: None,
                    deletion_vector: None,
                    base_row_id: None,
                    default_row_commit_version: None,
                    clustering_provider: None,
                }));
            }
            let predicate = partition
                .iter()
                .map(|(k, v)| format!("{k} = '{}'", v.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(" AND ");
            let operation = DeltaOperation::Write {
                mode: if current.is_empty() {
                    SaveMode::Append
                } else {
                    SaveMode::Overwrite
                },
                partition_by: Some(partition_columns.iter().map(|c| c.to_string()).collect()),
                predicate: (!current.is_empty()).then_some(predicate),
            };
            // Conflicts are decided here, by partition: delta-rs retrying on
            // its own would need its query engine to judge the predicate.
            let properties = CommitProperties::default()
                .with_metadata(info.clone())
                .with_max_retries(0)
                .with_create_checkpoint(true);
            let committed = block_on(
                CommitBuilder::from(properties)
                    .with_actions(actions)
                    .build(Some(state), self.table.log_store(), operation)
                    .into_future(),
            );
            match committed {
                Ok(done) => {
                    let version = done.version();
                    self.reload()?;
                    return Ok(Ok(version));
                }
                Err(DeltaTableError::VersionAlreadyExists(_))
                | Err(DeltaTableError::Transaction {
                    source: TransactionError::MaxCommitAttempts(_),
                }) => {
                    tracing::debug!(table = %self.rel, "another commit came first; retrying on the new version");
                    self.reload()?;
                }
                Err(e) => return Err(self.error(e)),
            }
        }
        Err(self.error(format!(
            "{ATTEMPTS} commits in a row lost to other writers' commits; try again"
        )))
    }

    /// Deletes the files that commits removed from the table more than
    /// `retain_hours` ago (default: the table's
    /// `delta.deletedFileRetentionDuration`, 7 days unless set); a shorter
    /// retention than the table's needs `force`. Returns the retention used
    /// and the files deleted (or, with `dry_run`, that would be).
    pub fn vacuum(&mut self, retain_hours: Option<u64>, force: bool, dry_run: bool) -> Result<(u64, Vec<String>)> {
        let _runtime = enter_runtime();
        let state = self.table.snapshot().map_err(|e| self.error(e))?;
        let table_hours = state
            .table_config()
            .deleted_file_retention_duration
            .map_or(7 * 24, |d| d.as_secs() / 3600);
        let hours = retain_hours.unwrap_or(table_hours);
        if hours < table_hours && !force {
            return Err(Error::config(format!(
                "--retain-hours {hours} is shorter than the {table_hours} hours that the Delta table `{}` keeps removed files for (delta.deletedFileRetentionDuration): readers of older versions and time travel to them would fail; pass --force if none are in use",
                self.store.uri_of(&self.store.path(&self.rel))
            )));
        }
        let (table, metrics) = block_on(
            self.table
                .clone()
                .vacuum()
                .with_retention_period(chrono::Duration::hours(hours as i64))
                .with_enforce_retention_duration(false)
                .with_dry_run(dry_run)
                .into_future(),
        )
        .map_err(|e| self.error(e))?;
        self.table = table;
        Ok((hours, metrics.files_deleted))
    }

    /// Refuses, before any file is written, columns a Delta table cannot
    /// hold and columns whose type differs from the table's.
    pub fn check(&self, schema: &Schema, partition: &[(&str, &str)]) -> Result<()> {
        let _runtime = enter_runtime();
        let columns = delta_columns(schema, partition)?;
        if self.exists {
            self.schema_actions(&columns)?;
        }
        Ok(())
    }

    /// A metadata action when `columns` adds columns to the table's schema. A column whose type differs from the table's is refused:
    /// Delta readers cannot read one column as two types.
    fn schema_actions(&self, columns: &[StructField]) -> Result<Vec<Action>> {
        let _runtime = enter_runtime();
        let state = self.table.snapshot().map_err(|e| self.error(e))?;
        let schema = state.schema();
        let mut fields: Vec<StructField> = schema.fields().cloned().collect();
        let mut grown = false;
        for column in columns {
            match schema.field(column.name()) {
                Some(existing) if existing.data_type() != column.data_type() => {
                    return Err(Error::Refused(format!(
                        "column `{}` is {} in the Delta table `{}`, but this run writes it as {}: a Delta table keeps a column's type; change the pipeline back, or write to a new output root",
                        column.name(),
                        existing.data_type(),
                        self.store.uri_of(&self.store.path(&self.rel)),
                        column.data_type()
                    )));
                }
                Some(_) => {}
                // Such a column needs a table feature that only a table
                // created with it has.
                None if column.data_type() == &DeltaType::TIMESTAMP_NTZ => {
                    return Err(Error::config(format!(
                        "column `{}` is a timestamp without time zone, new to the Delta table `{}`, which cannot take one: give it a time zone in the pipeline, or write to a new output root",
                        column.name(),
                        self.store.uri_of(&self.store.path(&self.rel)),
                    )));
                }
                None => {
                    fields.push(column.clone());
                    grown = true;
                }
            }
        }
        if !grown {
            return Ok(Vec::new());
        }
        let new_schema = StructType::try_new(fields).map_err(|e| self.error(e))?;
        let metadata = state
            .metadata()
            .clone()
            .with_schema(&new_schema)
            .map_err(|e| self.error(e))?;
        let actions = vec![Action::Metadata(metadata)];
        Ok(actions)
    }
}

fn in_partition(values: &PartitionValues, partition: &[(&str, &str)]) -> bool {
    partition
        .iter()
        .all(|(k, v)| values.get(*k).and_then(|x| x.as_deref()) == Some(*v))
}

/// The Delta type of a polars type, and the polars type a column is cast to
/// first when Delta has no exact equivalent (unsigned integers widen,
/// timestamps become microseconds).
fn delta_type(dtype: &DataType) -> Option<(DeltaType, Option<DataType>)> {
    let primitive = |p: PrimitiveType| DeltaType::Primitive(p);
    Some(match dtype {
        DataType::Boolean => (primitive(PrimitiveType::Boolean), None),
        DataType::Int8 => (primitive(PrimitiveType::Byte), None),
        DataType::Int16 => (primitive(PrimitiveType::Short), None),
        DataType::Int32 => (primitive(PrimitiveType::Integer), None),
        DataType::Int64 => (primitive(PrimitiveType::Long), None),
        DataType::UInt8 => (primitive(PrimitiveType::Short), Some(DataType::Int16)),
        DataType::UInt16 => (primitive(PrimitiveType::Integer), Some(DataType::Int32)),
        DataType::UInt32 | DataType::UInt64 => (primitive(PrimitiveType::Long), Some(DataType::Int64)),
        DataType::Float32 => (primitive(PrimitiveType::Float), None),
        DataType::Float64 => (primitive(PrimitiveType::Double), None),
        DataType::String => (primitive(PrimitiveType::String), None),
        // A column of nulls only (prev(x) before x had a value).
        DataType::Null => (primitive(PrimitiveType::String), Some(DataType::String)),
        DataType::Date => (primitive(PrimitiveType::Date), None),
        DataType::Datetime(unit, tz) => {
            let p = if tz.is_some() {
                PrimitiveType::Timestamp
            } else {
                PrimitiveType::TimestampNtz
            };
            let cast =
                (*unit != TimeUnit::Microseconds).then(|| DataType::Datetime(TimeUnit::Microseconds, tz.clone()));
            (primitive(p), cast)
        }
        DataType::Decimal(precision, scale) => {
            let d = PrimitiveType::decimal(*precision as u8, *scale as u8).ok()?;
            (primitive(d), None)
        }
        _ => return None,
    })
}

/// The table's columns for a frame's schema, then the partition columns
/// (strings). Every column is nullable: a later pipeline may leave one out.
fn delta_columns(schema: &Schema, partition: &[(&str, &str)]) -> Result<Vec<StructField>> {
    let mut columns = Vec::new();
    for (name, dtype) in schema.iter() {
        let (delta, _) = delta_type(dtype).ok_or_else(|| {
            Error::config(format!(
                "column `{name}` is {dtype}, which a Delta table cannot hold; cast it in the pipeline (a feature) or leave it out of `passthrough`"
            ))
        })?;
        columns.push(StructField::new(name.as_str(), delta, true));
    }
    for (name, _) in partition {
        columns.push(StructField::new(
            *name,
            DeltaType::Primitive(PrimitiveType::String),
            true,
        ));
    }
    Ok(columns)
}

/// Casts the columns Delta has no exact type for, before the frame is
/// written; an unsigned value too large for Delta's `long` is an error
/// naming its column.
pub fn conform(mut frame: DataFrame) -> Result<DataFrame> {
    let casts: Vec<(String, DataType)> = frame
        .schema()
        .iter()
        .filter_map(|(name, dtype)| Some((name.to_string(), delta_type(dtype)?.1?)))
        .collect();
    for (name, to) in casts {
        let column = frame.column(&name).expect("listed above");
        let cast = column.strict_cast(&to).map_err(|_| {
            Error::config(format!(
                "column `{name}` has values above 2^63, which a Delta table's `long` cannot hold"
            ))
        })?;
        frame.with_column(cast.into_column()).expect("same name and length");
    }
    Ok(frame)
}
