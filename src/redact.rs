//! Keeps secrets out of everything quadrant prints or sends: logs (its own
//! and its libraries', at any level), errors, results, summaries, Dagster
//! Pipes messages and lineage events. Two kinds of masking, both to `***`:
//! - the secrets quadrant knows: the values of the credential variables of
//!   each store (by object_store's own key names) and of OpenLineage, the
//!   secrets in the credential files they name, a lineage URL's password,
//!   and any password of a URL in the environment, each as written and as
//!   JSON, a URL or HTTP basic auth would encode it;
//! - the secrets no one can know beforehand, by where they stand: a URL's
//!   user name and password, a bearer or basic `Authorization`, and fields
//!   such as `sig=` (a SAS signature), `client_secret=`, `access_token`,
//!   `x-amz-security-token:` in a query, a form, JSON or a header, as a
//!   store's error may echo them.

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

use base64::Engine;

const MASK: &str = "***";

/// Shorter values are not masked: they would mask ordinary words.
const MIN_SECRET: usize = 6;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// object_store's keys (canonical names) whose values are credentials.
const SECRET_KEYS: &[&str] = &[
    "aws_secret_access_key",
    "aws_session_token",
    "aws_sse_customer_key_base64",
    "azure_storage_account_key",
    "azure_storage_client_secret",
    "azure_storage_sas_key",
    "azure_storage_token",
    "azure_fabric_session_token",
    "google_service_account_key",
];

/// object_store's keys that name a file holding a credential.
const FILE_KEYS: &[&str] = &[
    "aws_web_identity_token_file",
    "aws_container_authorization_token_file",
    "azure_federated_token_file",
    "google_service_account",
    "google_application_credentials",
];

/// Credential variables that object_store does not read as keys, but its
/// credential providers, polars or OpenLineage do.
const OTHER_SECRETS: &[&str] = &[
    "OPENLINEAGE_API_KEY",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "IDENTITY_HEADER",
];
const OTHER_FILES: &[&str] = &["SERVICE_ACCOUNT", "AWS_SHARED_CREDENTIALS_FILE"];

/// Files read without a variable naming them, relative to the home folder:
/// AWS's shared credentials (polars reads them) and gcloud's application
/// default credentials (object_store reads them).
const HOME_FILES: &[&str] = &[
    ".aws/credentials",
    ".config/gcloud/application_default_credentials.json",
];

/// The fields of a JSON credentials document that hold secrets.
const JSON_SECRET_FIELDS: &[&str] = &["private_key", "private_key_id", "client_secret", "refresh_token"];

/// Names whose value is a credential wherever it shows: in a query or a
/// form (`sig=...`), as a JSON field (`"access_token": "..."`) or as an
/// HTTP header (`authorization: ...`).
const SECRET_FIELDS: &[&str] = &[
    "sig",
    "x-amz-signature",
    "x-goog-signature",
    "x-amz-security-token",
    "authorization",
    "client_secret",
    "client_assertion",
    "assertion",
    "access_token",
    "refresh_token",
    "id_token",
    "password",
    "api_key",
];

/// What a variable holds: a credential, the path of a file holding one, or
/// neither.
#[derive(Debug, PartialEq)]
enum Holds {
    Secret,
    File,
    Nothing,
}

fn holds(name: &str) -> Holds {
    let upper = name.to_ascii_uppercase();
    if OTHER_SECRETS.contains(&upper.as_str()) {
        return Holds::Secret;
    }
    if OTHER_FILES.contains(&upper.as_str()) {
        return Holds::File;
    }
    // object_store reads every AWS_*, AZURE_* and GOOGLE_* variable that
    // names one of its keys.
    let lower = name.to_ascii_lowercase();
    let key = if upper.starts_with("AWS_") {
        lower
            .parse::<object_store::aws::AmazonS3ConfigKey>()
            .ok()
            .map(|k| k.as_ref().to_string())
    } else if upper.starts_with("AZURE_") {
        lower
            .parse::<object_store::azure::AzureConfigKey>()
            .ok()
            .map(|k| k.as_ref().to_string())
    } else if upper.starts_with("GOOGLE_") {
        lower
            .parse::<object_store::gcp::GoogleConfigKey>()
            .ok()
            .map(|k| k.as_ref().to_string())
    } else {
        None
    };
    match key {
        Some(key) if SECRET_KEYS.contains(&key.as_str()) => Holds::Secret,
        Some(key) if FILE_KEYS.contains(&key.as_str()) => Holds::File,
        Some(_) => Holds::Nothing,
        // Other names of these prefixes, by what they say.
        None if ["AWS_", "AZURE_", "GOOGLE_", "OPENLINEAGE_"]
            .iter()
            .any(|p| upper.starts_with(p))
            && ["SECRET", "TOKEN", "PASSWORD", "_KEY", "SAS", "CREDENTIAL"]
                .iter()
                .any(|w| upper.contains(w)) =>
        {
            if upper.ends_with("_FILE") || upper.ends_with("_PATH") {
                Holds::File
            } else {
                Holds::Secret
            }
        }
        None => Holds::Nothing,
    }
}

/// Collects the secrets of the environment and of the credential files it
/// names. Called once at start-up, before anything is logged.
pub fn init() {
    for (name, value) in std::env::vars() {
        match holds(&name) {
            Holds::Secret => {
                register(&value);
                register_json_secrets(&value);
            }
            Holds::File => register_file(std::path::Path::new(&value)),
            Holds::Nothing => {}
        }
        if name == "SPARK_REMOTE" {
            register_spark_remote(&value);
        }
        // A URL with a password (OPENLINEAGE_URL, a proxy's URL, ...).
        if value.contains("://") && value.contains('@') {
            register_url(&value);
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        for file in HOME_FILES {
            register_file(&std::path::Path::new(&home).join(file));
        }
    }
}

/// The secrets of a credentials file: a token file's token, the secret
/// fields of a JSON document, the keys and tokens of an AWS credentials file.
fn register_file(path: &std::path::Path) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if !meta.is_file() || meta.len() > 1 << 20 {
        return;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    if register_json_secrets(&text) {
        return;
    }
    let mut ini = false;
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            let key = key.trim().to_ascii_lowercase();
            if key.contains("secret") || key.contains("token") || key.contains("password") {
                register(value);
            }
            ini = true;
        }
    }
    if !ini {
        // A token file holds the token alone.
        register(&text);
    }
}

/// The secret fields of a JSON credentials document (a Google service
/// account key and the like); false when the text is not a JSON object.
fn register_json_secrets(text: &str) -> bool {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    for field in JSON_SECRET_FIELDS {
        if let Some(value) = doc.get(*field).and_then(|v| v.as_str()) {
            register(value);
        }
    }
    true
}

/// The password of a URL, and the `Authorization: Basic` value an HTTP
/// client makes of its user and password.
pub fn register_url(text: &str) {
    let Ok(url) = url::Url::parse(text.trim()) else { return };
    let Some(password) = url.password() else { return };
    let (user, password) = (percent_decode(url.username()), percent_decode(password));
    register(&password);
    register(url.password().unwrap_or_default());
    register(&base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
}

/// The token of a Spark Connect connection string
/// (`sc://host:port/;token=...`), as written and percent-decoded.
pub fn register_spark_remote(remote: &str) {
    for param in remote.split(';').skip(1) {
        if let Some((key, value)) = param.split_once('=')
            && key.trim().eq_ignore_ascii_case("token")
        {
            register(value);
            register(&percent_decode(value));
        }
    }
}

/// `%40` -> `@`, as an HTTP client decodes a URL's user and password (a
/// `+` stays a `+`).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// Masks `secret` from now on: as it is, as JSON or a URL would encode it,
/// and for a multi-line secret (a PEM key) each of its lines. Of a SAS
/// token, the signature is the secret: its other fields (version,
/// permissions, dates) are not, and stay readable.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET {
        return;
    }
    let mut forms = vec![secret.to_string()];
    forms.push(
        serde_json::to_string(secret)
            .expect("a string")
            .trim_matches('"')
            .to_string(),
    );
    forms.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    forms.extend(
        secret
            .lines()
            .map(str::trim)
            .filter(|l| l.len() >= 16)
            .map(str::to_string),
    );
    for pair in secret.trim_start_matches('?').split('&') {
        if let Some(sig) = pair.strip_prefix("sig=") {
            forms.push(sig.to_string());
            forms.extend(url::form_urlencoded::parse(format!("v={sig}").as_bytes()).map(|(_, v)| v.into_owned()));
            forms.push(url::form_urlencoded::byte_serialize(sig.as_bytes()).collect());
        }
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if form.len() >= MIN_SECRET && !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so that a secret is masked whole before its parts.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// A URI with any user name and password replaced by `***`.
pub fn uri(text: &str) -> String {
    mask_userinfo(text).into_owned()
}

/// `scheme://user:pass@host` -> `scheme://***@host`, anywhere in a text.
fn mask_userinfo(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || "\"'`<>),".contains(c))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        // abfss://container@account...: the container, not a user.
        let container = head.ends_with("abfss://") || head.ends_with("abfs://");
        match authority.rfind('@') {
            Some(at) if !container || authority[..at].contains(':') => {
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Replaces the byte ranges of `text` by `***` (ranges may overlap).
fn mask_ranges(text: &str, mut ranges: Vec<(usize, usize)>) -> Cow<'_, str> {
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    ranges.sort();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in ranges {
        if end <= at {
            continue;
        }
        out.push_str(&text[at..start.max(at)]);
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `Bearer <token>` and `Basic <user:password in base64>`, as an
/// `Authorization` header carries them.
fn mask_schemes(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    let mut ranges = Vec::new();
    for scheme in ["bearer ", "basic "] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(scheme) {
            let start = from + i + scheme.len();
            from = start;
            if from - scheme.len() > 0 && is_name_byte(lower.as_bytes()[from - scheme.len() - 1]) {
                continue;
            }
            let len = text[start..]
                .bytes()
                .position(|b| !(b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)))
                .unwrap_or(text.len() - start);
            let token = &text[start..start + len];
            let secret = if scheme == "bearer " {
                len >= 16
            } else {
                len >= 8
                    && base64::engine::general_purpose::STANDARD
                        .decode(token)
                        .is_ok_and(|b| b.contains(&b':'))
            };
            if secret {
                ranges.push((start, start + len));
            }
        }
    }
    mask_ranges(text, ranges)
}

/// The values of [`SECRET_FIELDS`] in a query or form (`name=value`), JSON
/// (`"name": "value"`, also escaped inside a JSON string) or a header
/// (`name: value`).
fn mask_fields(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    let mut ranges = Vec::new();
    for name in SECRET_FIELDS {
        let mut from = 0;
        while let Some(i) = lower[from..].find(name) {
            let at = from + i;
            from = at + name.len();
            if at > 0 && is_name_byte(lower.as_bytes()[at - 1]) {
                continue;
            }
            let rest = &lower[from..];
            let json = ["\":\"", "\": \"", "\\\":\\\"", "\\\": \\\""]
                .iter()
                .find(|s| rest.starts_with(**s));
            let (separator, ends): (usize, &[u8]) = if rest.starts_with('=') {
                (1, b"&;, \t\r\n\"'`<>)]}\\")
            } else if let Some(s) = json {
                (s.len(), b"\"\\")
            } else if rest.starts_with(": ") {
                (2, b"\r\n\"\\")
            } else {
                continue;
            };
            let start = from + separator;
            let len = text[start..]
                .bytes()
                .position(|b| ends.contains(&b))
                .unwrap_or(text.len() - start);
            if len > 0 && &text[start..start + len] != MASK {
                ranges.push((start, start + len));
            }
        }
    }
    mask_ranges(text, ranges)
}

/// The text with every secret masked.
pub fn text(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
    }
    for mask in [mask_schemes, mask_fields, mask_userinfo] {
        if let Cow::Owned(s) = mask(&out) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// A tracing writer that masks secrets in each line before it is written.
pub struct Writer<M>(pub M);

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a> for Writer<M> {
    type Writer = Masking<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Masking(self.0.make_writer())
    }
}

pub struct Masking<W>(W);

impl<W: Write> Write for Masking<W> {
    /// tracing writes each event whole, in one call, so a secret is never
    /// split across two calls.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let raw = String::from_utf8_lossy(buf);
        self.0.write_all(text(&raw).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_signatures_and_registered_secrets_are_masked() {
        assert_eq!(uri("s3://AKIAX:wJalr+xyz@bucket/path"), "s3://***@bucket/path");
        assert_eq!(
            uri("abfss://container@account.dfs.core.windows.net/x"),
            "abfss://container@account.dfs.core.windows.net/x"
        );
        assert_eq!(
            uri("abfss://container:pw@account.dfs.core.windows.net/x"),
            "abfss://***@account.dfs.core.windows.net/x"
        );
        assert_eq!(
            text("POST https://user:pa55word@lineage.example/api failed").as_ref(),
            "POST https://***@lineage.example/api failed"
        );
        assert_eq!(
            text("GET http://h/c/b?sv=2021&sig=abc%2Fdef%3D&se=x: 403").as_ref(),
            "GET http://h/c/b?sv=2021&sig=***&se=x: 403"
        );
        register("Qu4drant/Secret+Value==");
        assert_eq!(text("key Qu4drant/Secret+Value== here").as_ref(), "key *** here");
        assert_eq!(text("json \"Qu4drant/Secret+Value==\"").as_ref(), "json \"***\"");
        assert_eq!(text("url Qu4drant%2FSecret%2BValue%3D%3D").as_ref(), "url ***");
        assert_eq!(
            text("no secrets at s3://bucket/x").as_ref(),
            "no secrets at s3://bucket/x"
        );
    }

    #[test]
    fn the_lines_of_a_private_key_are_masked() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n";
        register_json_secrets(&serde_json::json!({ "type": "service_account", "private_key": key }).to_string());
        assert_eq!(
            text("bad line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC").as_ref(),
            "bad line ***"
        );
        assert!(!text(&serde_json::to_string(key).unwrap()).contains("BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"));
    }

    /// Only a SAS token's signature is secret: dates and permissions that
    /// happen to equal its other fields stay readable in summaries.
    #[test]
    fn of_a_sas_token_only_the_signature_is_masked() {
        register("sv=2021-08-06&ss=b&srt=sco&sp=rwdlacx&se=2030-01-01T00:00:00Z&sig=U2lnbmF0dXJlT2ZUaGlz%3D");
        assert_eq!(text("as_of 2021-08-06, rwdlacx").as_ref(), "as_of 2021-08-06, rwdlacx");
        assert_eq!(text("sig U2lnbmF0dXJlT2ZUaGlz=").as_ref(), "sig ***");
        assert_eq!(text("sig U2lnbmF0dXJlT2ZUaGlz%3D").as_ref(), "sig ***");
    }

    #[test]
    fn a_url_password_is_masked_also_as_basic_auth() {
        register_url("https://lineage:p%40ssWord77@lineage.example/api");
        let basic = base64::engine::general_purpose::STANDARD.encode("lineage:p@ssWord77");
        assert_eq!(text(&format!("x {basic} y")).as_ref(), "x *** y");
        assert_eq!(text("said p@ssWord77").as_ref(), "said ***");
    }

    /// What no one can know beforehand (a token a store's identity service
    /// hands out, a signed assertion) is masked by where it stands, as an
    /// error body echoing a request shows it.
    #[test]
    fn tokens_are_masked_by_where_they_stand() {
        for (given, want) in [
            (
                "authorization: Bearer eyJhbGciOi.JSUzI1NiJ9.c2lnbmF0dXJl\r\nhost: x",
                "authorization: ***\r\nhost: x",
            ),
            ("got Bearer eyJhbGciOiJSUzI1NiJ9.abc-_ then", "got Bearer *** then"),
            ("Authorization: Basic bGluZWFnZTpwYXNzd29yZA==", "Authorization: ***"),
            ("Basic authentication failed", "Basic authentication failed"),
            ("the bearer token is missing", "the bearer token is missing"),
            (
                "grant_type=client_credentials&client_id=abc&client_secret=Qu4~x.y&scope=s",
                "grant_type=client_credentials&client_id=abc&client_secret=***&scope=s",
            ),
            (
                "{\"access_token\": \"ya29.token\", \"expires_in\": 3599}",
                "{\"access_token\": \"***\", \"expires_in\": 3599}",
            ),
            (
                "{\"message\":\"{\\\"refresh_token\\\":\\\"1//0g-token\\\"}\"}",
                "{\"message\":\"{\\\"refresh_token\\\":\\\"***\\\"}\"}",
            ),
            (
                "x-amz-security-token: FwoGZXIvYXdz\r\n",
                "x-amz-security-token: ***\r\n",
            ),
            ("assertion=eyJ.eyJ.sig&grant_type=jwt", "assertion=***&grant_type=jwt"),
            ("a design=good, sigma=1", "a design=good, sigma=1"),
            ("assertion failed: left == right", "assertion failed: left == right"),
        ] {
            assert_eq!(text(given).as_ref(), want, "{given}");
        }
    }

    /// Which variables hold credentials is read off object_store's own key
    /// names, under any of their aliases.
    #[test]
    fn credential_variables_by_object_store_key_names() {
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_SSE_CUSTOMER_KEY_BASE64",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_ACCESS_KEY",
            "AZURE_STORAGE_MASTER_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_CLIENT_SECRET",
            "AZURE_STORAGE_CLIENT_SECRET",
            "AZURE_STORAGE_TOKEN",
            "AZURE_FABRIC_SESSION_TOKEN",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            "OPENLINEAGE_API_KEY",
            "IDENTITY_HEADER",
        ] {
            assert_eq!(holds(name), Holds::Secret, "{name}");
        }
        for name in [
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "AZURE_FEDERATED_TOKEN_FILE",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_PATH",
            "SERVICE_ACCOUNT",
            "AWS_SHARED_CREDENTIALS_FILE",
        ] {
            assert_eq!(holds(name), Holds::File, "{name}");
        }
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SSE_KMS_KEY_ID",
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_CLIENT_ID",
            "GOOGLE_BUCKET",
            "HOME",
        ] {
            assert_eq!(holds(name), Holds::Nothing, "{name}");
        }
    }

    #[test]
    fn secrets_of_credential_files_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "eyJWebIdentity.Token.FileValue\n").unwrap();
        register_file(&token);
        let aws = dir.path().join("credentials");
        std::fs::write(
            &aws,
            "[default]\naws_access_key_id = AKIAPUBLICID\naws_secret_access_key = SharedFileSecret+123\n",
        )
        .unwrap();
        register_file(&aws);
        assert_eq!(
            text("t eyJWebIdentity.Token.FileValue s SharedFileSecret+123 id AKIAPUBLICID").as_ref(),
            "t *** s *** id AKIAPUBLICID"
        );
    }
}
