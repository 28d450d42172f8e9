//! Keeps secrets out of everything quadrant prints or sends: logs (its own
//! and its libraries', at any level), errors, results, summaries, Dagster
//! Pipes messages and lineage events. The secrets are the values of the
//! credential variables of each store and of OpenLineage, the private key of
//! a Google service-account file, and the password of a URL; every known
//! value, and any URL's user name and password and any SAS signature, is
//! replaced by `***`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

const MASK: &str = "***";

/// Variables whose values are credentials, by object_store's and
/// OpenLineage's names. Any other `AWS_`, `AZURE_` or `GOOGLE_` variable
/// whose name says secret, token, key or password counts as well.
const SECRET_VARIABLES: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_SSE_CUSTOMER_KEY_BASE64",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_TOKEN",
    "AZURE_FABRIC_SESSION_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "OPENLINEAGE_API_KEY",
];

/// Variables that name a credentials file whose secrets are masked too.
const CREDENTIAL_FILES: &[&str] = &[
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_PATH",
];

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

fn is_secret_variable(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    SECRET_VARIABLES.contains(&name.as_str())
        || (["AWS_", "AZURE_", "GOOGLE_", "OPENLINEAGE_"]
            .iter()
            .any(|p| name.starts_with(p))
            && ["SECRET", "TOKEN", "PASSWORD", "_KEY", "SAS"]
                .iter()
                .any(|w| name.contains(w))
            && name != "AWS_ACCESS_KEY_ID")
}

/// Collects the secrets of the environment. Called once at start-up,
/// before anything is logged.
pub fn init() {
    for (name, value) in std::env::vars() {
        if is_secret_variable(&name) {
            register(&value);
        }
    }
    for name in CREDENTIAL_FILES {
        if let Some(text) = std::env::var(name).ok().and_then(|p| std::fs::read_to_string(p).ok()) {
            register_json_secrets(&text);
        }
    }
    if let Ok(key) = std::env::var("GOOGLE_SERVICE_ACCOUNT_KEY") {
        register_json_secrets(&key);
    }
}

/// The secret fields of a JSON credentials document (a Google service
/// account key and the like).
fn register_json_secrets(text: &str) {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    for field in ["private_key", "private_key_id", "client_secret", "refresh_token"] {
        if let Some(value) = doc.get(field).and_then(|v| v.as_str()) {
            register(value);
        }
    }
}

/// Masks `secret` from now on: as it is, as JSON or a URL would encode it,
/// and for a multi-line secret (a PEM key) each of its lines, and for a SAS
/// token each of its values.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < 6 {
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
        if let Some((_, value)) = pair.split_once('=')
            && value.len() >= 6
        {
            forms.push(value.to_string());
            forms.extend(url::form_urlencoded::parse(format!("v={value}").as_bytes()).map(|(_, v)| v.into_owned()));
            forms.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
        }
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if form.len() >= 6 && !secrets.contains(&form) {
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
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `sig=...` (a SAS signature) -> `sig=***`.
fn mask_signatures(text: &str) -> Cow<'_, str> {
    if !text.contains("sig=") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("sig=") {
        let (head, tail) = rest.split_at(i + 4);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '&' || c.is_whitespace() || "\"'`<>),".contains(c))
            .unwrap_or(tail.len());
        if end > 0 {
            out.push_str(MASK);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The text with every secret masked.
pub fn text(text: &str) -> Cow<'_, str> {
    let mut out = mask_signatures(text);
    if let Cow::Owned(s) = mask_userinfo(&out) {
        out = Cow::Owned(s);
    }
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
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
}
