//! `[quality]`: a policy for each data check.

use std::collections::BTreeMap;

use super::Compiler;
use crate::config::raw::RawPipeline;
use crate::config::*;
use crate::error::did_you_mean;

impl Compiler<'_> {
    pub(super) fn quality(&mut self, raw: &RawPipeline) -> Quality {
        let mut quality = Quality {
            policies: BTreeMap::new(),
            max_reject_ratio: None,
        };
        for (key, value) in &raw.quality {
            let k = key.get_ref().as_str();
            if k == "max_reject_ratio" {
                match value.get_ref() {
                    toml::Value::Float(v) if (0.0..=1.0).contains(v) => quality.max_reject_ratio = Some(*v),
                    toml::Value::Integer(v) if (0..=1).contains(v) => quality.max_reject_ratio = Some(*v as f64),
                    _ => self.problem(
                        value.span().start,
                        "`max_reject_ratio` must be a number from 0 to 1".into(),
                        None,
                    ),
                }
                continue;
            }
            let Some(check) = Check::ALL.into_iter().find(|c| c.name() == k) else {
                let names = Check::ALL.iter().map(|c| c.name()).chain(["max_reject_ratio"]);
                let help = did_you_mean(k, names.clone())
                    .unwrap_or_else(|| format!("the checks are: {}", names.collect::<Vec<_>>().join(", ")));
                self.problem(
                    key.span().start,
                    format!("unknown data check `{k}` in [quality]"),
                    Some(help),
                );
                continue;
            };
            let policy = match value.get_ref().as_str() {
                Some("error") => Policy::Error,
                Some("warn") if check.allows_warn() => Policy::Warn,
                Some("warn") => {
                    self.problem(
                        value.span().start,
                        format!("`{k}` cannot be `warn`: a row without a usable key cannot be kept"),
                        Some("use `error` or `drop`".into()),
                    );
                    continue;
                }
                Some("drop") => Policy::Drop,
                _ => {
                    self.problem(
                        value.span().start,
                        format!("the policy of `{k}` must be \"error\", \"warn\" or \"drop\""),
                        None,
                    );
                    continue;
                }
            };
            quality.policies.insert(check, policy);
        }
        quality
    }
}
