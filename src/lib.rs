//! quadrant: segments a B2B customer base once per review cycle.
//!
//! The modules, in the order data flows through a run:
//! - [`cli`] and [`commands`]: what the user asked; `Settings::resolve`
//!   turns flags, the pipeline file and the environment into settings.
//! - [`config`] and [`expr`]: the pipeline file and its expression language,
//!   parsed and checked into a `Pipeline` (all problems at once).
//! - [`cycle`]: review cycles and their `as_of` dates.
//! - [`plan`]: what to compute for a cycle, engine-neutral.
//! - [`storage`]: URIs to object stores; [`engine`]: how polars computes the
//!   plan (inputs, data checks, aggregates, features, rules).
//! - [`snapshot`]: the one commit protocol, layout, manifest and encoding.
//! - [`compare`] and [`report`]: what is read back from committed snapshots.
//! - [`integrations`]: OpenLineage and Dagster Pipes; [`logging`], [`progress`],
//!   [`output`], [`terminal`] and [`redact`]: what is shown, and what never is.
//! - [`error`]: error categories and their exit codes.

// In data-flow order (rustfmt keeps each group's order).
// What the user asked:
pub mod cli;
pub mod commands;

// What to compute: the pipeline file, its language, cycles, the plan.
pub mod config;

pub mod expr;

pub mod cycle;

pub mod plan;

// How it is computed, and where the data lives.
pub mod storage;

pub mod engine;

// How a result becomes a committed snapshot, and what reads it back.
pub mod snapshot;

pub mod compare;
pub mod diff;

pub mod report;

// Around a run: synthetic data, orchestrators, what is shown and never shown.
pub mod generate;

pub mod integrations;

pub mod logging;
pub mod output;
pub mod progress;
pub mod redact;
pub mod terminal;

// Errors and their exit codes.
pub mod error;

mod fuzz;

/// The layers, checked from the source: no module imports one above it,
/// and no two modules (nor two files of one module) import each other,
/// directly or round a longer circle. `cargo test --lib layers` runs it.
#[cfg(test)]
mod layers {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Each `.rs` file below `src/`, as its module path (`engine/polars/rules`),
    /// with its text before any `#[cfg(test)]`.
    fn sources() -> BTreeMap<String, String> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if path.extension().is_some_and(|x| x == "rs") {
                    let rel = path.strip_prefix(base).unwrap().with_extension("");
                    let name = rel.to_string_lossy().trim_end_matches("/mod").to_string();
                    let text = std::fs::read_to_string(&path).unwrap();
                    let code = text.split("#[cfg(test)]").next().unwrap().to_string();
                    out.insert(name, code);
                }
            }
        }
        let mut out = BTreeMap::new();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        walk(&src, &src, &mut out);
        out
    }

    /// The `crate::a::b` paths a text names (comments left out).
    fn crate_paths(code: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let path: Vec<String> = line[i + 7..]
                    .split("::")
                    .map(|p| {
                        p.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                    .take_while(|p| !p.is_empty() && p.chars().next().is_some_and(|c| c.is_lowercase()))
                    .collect();
                if !path.is_empty() {
                    out.push(path);
                }
            }
        }
        out
    }

    fn cycle_in(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            node: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            stack: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = stack.iter().position(|n| n == node) {
                return Some(stack[at..].to_vec());
            }
            if done.contains(node) {
                return None;
            }
            stack.push(node.to_string());
            for next in graph.get(node).into_iter().flatten() {
                if let Some(c) = visit(next, graph, stack, done) {
                    return Some(c);
                }
            }
            stack.pop();
            done.insert(node.to_string());
            None
        }
        let mut done = BTreeSet::new();
        graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
    }

    #[test]
    fn no_module_imports_one_above_it_and_none_import_each_other() {
        let sources = sources();
        // What each layer may not name (STYLE.md: commands > engine and
        // snapshot > plan > config and expr).
        let forbidden: [(&str, &[&str]); 4] = [
            ("config", &["snapshot", "plan", "engine", "commands", "cli"]),
            ("expr", &["snapshot", "plan", "engine", "commands", "cli", "config"]),
            ("engine", &["cli", "commands"]),
            ("snapshot", &["engine", "cli", "commands"]),
        ];
        let mut up = Vec::new();
        for (file, code) in &sources {
            let top = file.split('/').next().unwrap();
            for (layer, above) in forbidden {
                if top != layer {
                    continue;
                }
                for path in crate_paths(code) {
                    if above.contains(&path[0].as_str()) {
                        up.push(format!("src/{file}.rs names crate::{}", path.join("::")));
                    }
                }
            }
        }
        assert!(up.is_empty(), "imports that run up the layers:\n{}", up.join("\n"));

        // Top-level modules, and the files inside each folder module.
        let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (file, code) in &sources {
            let parts: Vec<&str> = file.split('/').collect();
            for path in crate_paths(code) {
                if path[0] != parts[0] && sources.keys().any(|f| f.split('/').next() == Some(path[0].as_str())) {
                    top.entry(parts[0].to_string()).or_default().insert(path[0].clone());
                }
                // A sibling file of the same folder, named through the crate.
                let prefix = &parts[..parts.len() - 1];
                if path.len() > prefix.len() && path[..prefix.len()].iter().zip(prefix).all(|(a, b)| a == b) {
                    let sibling = path[..=prefix.len()].join("/");
                    if sibling != *file && sources.contains_key(&sibling) {
                        files.entry(file.clone()).or_default().insert(sibling);
                    }
                }
            }
            // `super::x` from a file names its sibling `x`.
            if parts.len() > 1 {
                let folder = parts[..parts.len() - 1].join("/");
                let code: String = code
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                for (i, _) in code.match_indices("super::") {
                    let name: String = code[i + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let sibling = format!("{folder}/{name}");
                    if sources.contains_key(&sibling) && sibling != *file {
                        files.entry(file.clone()).or_default().insert(sibling);
                    }
                }
            }
        }
        assert_eq!(cycle_in(&top), None, "modules that import each other");
        assert_eq!(cycle_in(&files), None, "files of one module that import each other");
    }
}
