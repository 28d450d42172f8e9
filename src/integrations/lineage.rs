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
    /// The URL without its user and password, so that no message shows them.
    url: String,
    /// HTTP basic auth from the URL's user and password.
    basic: Option<(String, String)>,
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
        // The URL may carry a user and password for the backend: they are
        // sent as basic auth, and masked wherever they could show.
        crate::redact::register_url(&url);
        let api_key = std::env::var("OPENLINEAGE_API_KEY").ok().filter(|k| !k.is_empty());
        let (url, basic) = match url::Url::parse(&url) {
            Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
                let basic = (
                    crate::redact::percent_decode(parsed.username()),
                    crate::redact::percent_decode(parsed.password().unwrap_or_default()),
                );
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
                if api_key.is_some() {
                    tracing::warn!(
                        "the lineage URL has a user and password and OPENLINEAGE_API_KEY is set: the API key is sent (as a bearer token), the URL's user and password are not"
                    );
                }
                (parsed.to_string(), api_key.is_none().then_some(basic))
            }
            _ => (url, None),
        };
        Some(Lineage { url, basic, api_key })
    }

    /// Sends an event; its text is masked like everything quadrant writes
    /// (an error message or a URI in it may quote a credential).
    fn send(&self, event: &Value) {
        let body = crate::redact::text(&event.to_string()).into_owned();
        let result = crate::storage::block_on(async {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?;
            let mut request = client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            } else if let Some((user, password)) = &self.basic {
                request = request.basic_auth(user, Some(password));
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            // The backend's answer says what it did not accept; masked
            // before it is cut, as it may quote what it was sent.
            let answer = response.text().await.unwrap_or_default();
            let answer: String = crate::redact::text(answer.trim()).chars().take(500).collect();
            Err(format!("{status}: {answer}"))
        });
        match result {
            Ok(()) => tracing::debug!(event_type = %event["eventType"], "sent lineage event"),
            Err(error) => tracing::warn!(url = %self.url, %error, "could not send the OpenLineage event"),
        }
    }
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
                "message": message,
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
