//! OpenLineage run events: START when a cycle's run begins, COMPLETE or
//! FAIL when it ends, with the input datasets and the snapshot as output.
//! Sent over HTTP to `--lineage-url` or `OPENLINEAGE_URL` (with
//! `OPENLINEAGE_ENDPOINT`, default `api/v1/lineage`, and an optional
//! `OPENLINEAGE_API_KEY`). A lineage backend that is down never fails a run:
//! the error is logged as a warning.

use serde_json::{Value, json};

const PRODUCER: &str = concat!("urn:quadrant:", env!("CARGO_PKG_VERSION"));
const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const JOB_NAMESPACE: &str = "quadrant";

/// Where events go, or nothing when lineage is not configured.
#[derive(Debug, Clone)]
pub struct Lineage {
    url: String,
    api_key: Option<String>,
}

impl Lineage {
    /// From the flag, else the standard OpenLineage environment variables.
    pub fn configure(flag: Option<&str>) -> Option<Lineage> {
        let base = flag
            .map(str::to_string)
            .or_else(|| std::env::var("OPENLINEAGE_URL").ok())?;
        let endpoint = std::env::var("OPENLINEAGE_ENDPOINT").unwrap_or_else(|_| "api/v1/lineage".into());
        let url = if flag.is_some() && base.contains("/api/") {
            base
        } else {
            format!("{}/{}", base.trim_end_matches('/'), endpoint.trim_start_matches('/'))
        };
        // The URL may carry a user and password for the backend.
        if let Ok(parsed) = url::Url::parse(&url)
            && let Some(password) = parsed.password()
        {
            crate::redact::register(password);
            if let Ok(decoded) = urlencoding_decode(password) {
                crate::redact::register(&decoded);
            }
        }
        Some(Lineage {
            url,
            api_key: std::env::var("OPENLINEAGE_API_KEY").ok(),
        })
    }

    fn send(&self, event: &Value) {
        let result = crate::storage::block_on(async {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?;
            let mut request = client.post(&self.url).json(event);
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            request.send().await?.error_for_status().map(|_| ())
        });
        match result {
            Ok(()) => tracing::debug!(event_type = %event["eventType"], "sent lineage event"),
            Err(e) => tracing::warn!(url = %self.url, error = %e, "could not send the OpenLineage event"),
        }
    }
}

fn urlencoding_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

/// An OpenLineage dataset for a URI: `s3://bucket/path` is namespace
/// `s3://bucket`, name `path`; a local path is namespace `file`.
pub fn dataset(uri: &str) -> Value {
    match uri.split_once("://") {
        Some((scheme, rest)) if scheme != "file" => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            json!({ "namespace": format!("{scheme}://{authority}"), "name": format!("/{path}"), "facets": {} })
        }
        _ => {
            let path = uri.strip_prefix("file://").unwrap_or(uri);
            let absolute = std::path::absolute(path)
                .map(|p| p.display().to_string())
                .unwrap_or(path.to_string());
            json!({ "namespace": "file", "name": absolute, "facets": {} })
        }
    }
}

fn facet(schema: &str) -> (String, String) {
    (
        PRODUCER.to_string(),
        format!("https://openlineage.io/spec/facets/{schema}"),
    )
}

/// One run of one cycle, as OpenLineage sees it.
pub struct LineageRun<'a> {
    lineage: &'a Lineage,
    run_id: String,
    job: String,
    cycle: String,
    start: String,
    end: String,
    inputs: Vec<Value>,
}

impl<'a> LineageRun<'a> {
    pub fn start(
        lineage: &'a Lineage,
        job: &str,
        cycle: &crate::cycle::Cycle,
        as_of: chrono::NaiveDate,
        inputs: &[&str],
    ) -> Self {
        let run = LineageRun {
            lineage,
            run_id: uuid::Uuid::new_v4().to_string(),
            job: job.to_string(),
            cycle: cycle.to_string(),
            start: format!("{}T00:00:00Z", cycle.start()),
            end: format!("{as_of}T23:59:59Z"),
            inputs: inputs.iter().map(|u| dataset(u)).collect(),
        };
        run.emit("START", None, Vec::new());
        run
    }

    fn emit(&self, event_type: &str, error: Option<&str>, outputs: Vec<Value>) {
        let (producer, nominal_schema) = facet("1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet");
        let mut run_facets = json!({
            "nominalTime": {
                "_producer": producer,
                "_schemaURL": nominal_schema,
                "nominalStartTime": self.start,
                "nominalEndTime": self.end,
            },
        });
        if let Some(message) = error {
            let (producer, schema) = facet("1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet");
            run_facets["errorMessage"] = json!({
                "_producer": producer,
                "_schemaURL": schema,
                "message": crate::redact::text(message),
                "programmingLanguage": "Rust",
            });
        }
        let event = json!({
            "eventType": event_type,
            "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "run": { "runId": self.run_id, "facets": run_facets },
            "job": { "namespace": JOB_NAMESPACE, "name": format!("{}.{}", self.job, self.cycle), "facets": {} },
            "inputs": self.inputs,
            "outputs": outputs,
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
        });
        self.lineage.send(&event);
    }

    /// The run committed `snapshot_uri` with `rows` rows in `bytes` bytes.
    pub fn complete(&self, snapshot_uri: &str, rows: u64, bytes: u64) {
        let (producer, schema) =
            facet("1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet");
        let mut output = dataset(snapshot_uri);
        output["outputFacets"] = json!({
            "outputStatistics": { "_producer": producer, "_schemaURL": schema, "rowCount": rows, "size": bytes },
        });
        self.emit("COMPLETE", None, vec![output]);
    }

    pub fn fail(&self, error: &str) {
        self.emit("FAIL", Some(error), Vec::new());
    }
}
