//! The HTML report: one self-contained page (inline SVG and CSS, no network)
//! with, for each matrix segmentation, the 2x2 scatter of the latest cycle,
//! the migration heat map between the last two cycles, and label counts and
//! ARR per label across every committed cycle.

use std::fmt::Write;

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::compare::{self, Report};
use crate::config::Segmentation;
use crate::error::{Context, Error, Result};
use crate::expr::{Ast, BinOp, Kind};
use crate::snapshot::{self, Manifest, Snapshots};
use crate::terminal;

/// The most points a scatter draws: beyond that an SVG gets too heavy for a
/// browser (226,000 accounts made a 97 MB page).
const MAX_POINTS: usize = 5_000;

const PALETTE: [&str; 8] = [
    "#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Values that rules compare an axis with: `wallet_share >= 0.8` draws a
/// line at 0.8 on the wallet_share axis.
fn thresholds(segmentation: &Segmentation, column: &str) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for rule in &segmentation.rules {
        rule.when.walk(&mut |ast: &Ast| {
            if let Kind::Binary(op, l, r) = &ast.kind
                && op.is_comparison()
                && *op != BinOp::NotEq
            {
                let value = match (&l.kind, &r.kind) {
                    (Kind::Column(c), Kind::Num(v)) | (Kind::Num(v), Kind::Column(c)) if c == column => Some(*v),
                    (Kind::Column(c), Kind::Int(v)) | (Kind::Int(v), Kind::Column(c)) if c == column => Some(*v as f64),
                    _ => None,
                };
                if let Some(v) = value
                    && !out.contains(&v)
                {
                    out.push(v);
                }
            }
        });
    }
    out
}

/// A linear or (for wide positive ranges) logarithmic axis.
struct Axis {
    min: f64,
    max: f64,
    log: bool,
    from: f64,
    to: f64,
}

impl Axis {
    fn new(values: &[f64], extra: &[f64], from: f64, to: f64) -> Axis {
        let all = values.iter().chain(extra).copied().filter(|v| v.is_finite());
        let (mut min, mut max) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        if !min.is_finite() {
            (min, max) = (0.0, 1.0);
        }
        let log = min > 0.0 && max / min > 1000.0;
        if !log {
            let pad = ((max - min) * 0.05).max(1e-9);
            (min, max) = (min - pad, max + pad);
        }
        Axis {
            min,
            max,
            log,
            from,
            to,
        }
    }

    fn at(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.max(self.min).ln() - self.min.ln()) / (self.max.ln() - self.min.ln())
        } else {
            (v - self.min) / (self.max - self.min)
        };
        self.from + t.clamp(0.0, 1.0) * (self.to - self.from)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (self.min.log10().ceil() as i32, self.max.log10().floor() as i32);
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            (0..=4)
                .map(|i| self.min + (self.max - self.min) * i as f64 / 4.0)
                .collect()
        }
    }
}

fn tick_label(v: f64) -> String {
    if v.abs() >= 1000.0 {
        terminal::compact(v)
    } else {
        format!("{:.2}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn values(frame: &DataFrame, column: &str) -> Vec<Option<f64>> {
    let Ok(c) = frame.column(column).and_then(|c| c.cast(&DataType::Float64)) else {
        return vec![None; frame.height()];
    };
    let f = c.f64().expect("cast to f64");
    (0..f.len()).map(|i| f.get(i)).collect()
}

fn scatter(out: &mut String, frame: &DataFrame, s: &Segmentation, x: &str, y: &str) {
    let labels = s.labels();
    let xs = values(frame, x);
    let ys = values(frame, y);
    let arr = values(frame, "arr");
    let ids = frame.column("account_id").ok();
    let seg_labels = frame.column(s.name.as_str()).ok();
    let points: Vec<Point> = (0..frame.height())
        .filter_map(|i| {
            let (x, y) = (xs[i]?, ys[i]?);
            let label = seg_labels
                .and_then(|c| c.get(i).ok())
                .map(|v| terminal::value(&v))
                .unwrap_or_default();
            let id = ids
                .and_then(|c| c.get(i).ok())
                .map(|v| terminal::value(&v))
                .unwrap_or_default();
            let label = labels.iter().position(|l| *l == label).unwrap_or(labels.len() - 1);
            Some(Point {
                x,
                y,
                arr: arr[i].unwrap_or(0.0).max(0.0),
                label,
                id,
            })
        })
        .collect();
    let skipped = frame.height() - points.len();
    let (w, h, left, bottom, top, right) = (680.0, 460.0, 64.0, 46.0, 16.0, 16.0);
    let xt = thresholds(s, x);
    let yt = thresholds(s, y);
    let ax = Axis::new(&points.iter().map(|p| p.x).collect::<Vec<_>>(), &xt, left, w - right);
    let ay = Axis::new(&points.iter().map(|p| p.y).collect::<Vec<_>>(), &yt, h - bottom, top);
    let max_arr = points.iter().map(|p| p.arr).fold(1.0, f64::max);
    let _ = write!(
        out,
        r#"<svg class="chart" data-chart="scatter-{name}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{name}: {x} x {y}</title>"#,
        name = escape(&s.name),
        x = escape(x),
        y = escape(y)
    );
    let _ = write!(
        out,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="#f8fafc" stroke="#cbd5e1"/>"##,
        w - left - right,
        h - top - bottom
    );
    for t in ax.ticks() {
        let px = ax.at(t);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#94a3b8"/><text x="{px:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            h - bottom,
            h - bottom + 4.0,
            h - bottom + 16.0,
            tick_label(t)
        );
    }
    for t in ay.ticks() {
        let py = ay.at(t);
        let _ = write!(
            out,
            r##"<line x1="{}" y1="{py:.1}" x2="{left}" y2="{py:.1}" stroke="#94a3b8"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            left - 4.0,
            left - 6.0,
            py + 4.0,
            tick_label(t)
        );
    }
    for v in &xt {
        let px = ax.at(*v);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{}" stroke="#0f172a" stroke-dasharray="5 4"><title>{x} = {v}</title></line>"##,
            h - bottom,
            x = escape(x)
        );
    }
    for v in &yt {
        let py = ay.at(*v);
        let _ = write!(
            out,
            r##"<line x1="{left}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#0f172a" stroke-dasharray="5 4"><title>{y} = {v}</title></line>"##,
            w - right,
            y = escape(y)
        );
    }
    for p in drawn(&points) {
        let r = 2.5 + 12.0 * (p.arr / max_arr).sqrt();
        let color = PALETTE[p.label % PALETTE.len()];
        let _ = write!(
            out,
            r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="{r:.1}" fill="{color}" fill-opacity="0.55" stroke="{color}"><title>{}: {}</title></circle>"#,
            ax.at(p.x),
            ay.at(p.y),
            escape(&p.id),
            escape(labels.get(p.label).copied().unwrap_or_default())
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}{}</text><text x="14" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {})">{}{}</text></svg>"#,
        (left + w - right) / 2.0,
        h - 8.0,
        escape(x),
        if ax.log { " (log scale)" } else { "" },
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
        escape(y),
        if ay.log { " (log scale)" } else { "" }
    );
    let legend: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let n = points.iter().filter(|p| p.label == k).count();
            format!(
                r#"<span><i style="background:{}"></i>{} ({n})</span>"#,
                PALETTE[k % PALETTE.len()],
                escape(l)
            )
        })
        .collect();
    let _ = write!(out, r#"<p class="legend">{}</p>"#, legend.join(" "));
    if skipped > 0 {
        let _ = write!(
            out,
            "<p class=\"note\">{skipped} accounts without a value for {} or {} are not drawn.</p>",
            escape(x),
            escape(y)
        );
    }
    if points.len() > MAX_POINTS {
        let _ = write!(
            out,
            "<p class=\"note\">{MAX_POINTS} of {} accounts drawn, chosen by a hash of the account id (the same accounts in every report); the axes, thresholds and the counts above cover all of them.</p>",
            points.len()
        );
    }
    out.push_str(
        "<p class=\"note\">Point size: ARR. Dashed lines: the thresholds the rules compare these axes with.</p>",
    );
}

fn heat_map(out: &mut String, report: &compare::SegmentationReport, from: &str, to: &str) {
    let _ = write!(
        out,
        r#"<table class="heat" data-chart="heat-{}"><caption>Migration {from} &rarr; {to}: accounts (share of the row)</caption><tr><th></th>"#,
        escape(&report.name)
    );
    for c in &report.columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr>");
    for (label, cells) in report.rows.iter().zip(&report.cells) {
        let total: u64 = cells.iter().map(|c| c.accounts).sum();
        let _ = write!(out, "<tr><th>{}</th>", escape(label));
        for c in cells {
            let share = if total == 0 {
                0.0
            } else {
                c.accounts as f64 / total as f64
            };
            let _ = write!(
                out,
                r#"<td style="background:rgba(37,99,235,{:.2});color:{}" title="ARR {} &rarr; {}">{}</td>"#,
                share,
                if share > 0.55 { "#fff" } else { "#0f172a" },
                terminal::compact(c.arr_start),
                terminal::compact(c.arr_end),
                c.accounts
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn history(out: &mut String, manifests: &[Manifest], name: &str) {
    // Each cycle with its label summary for this segmentation.
    let cycles: Vec<(&str, &[snapshot::LabelSummary])> = manifests
        .iter()
        .filter_map(|m| {
            let s = m.segmentations.iter().find(|s| s.name == name)?;
            Some((m.cycle.as_str(), s.labels.as_slice()))
        })
        .collect();
    let mut labels: Vec<String> = Vec::new();
    for (_, ls) in &cycles {
        for l in ls.iter() {
            if !labels.contains(&l.label) {
                labels.push(l.label.clone());
            }
        }
    }
    let (w, h, left, bottom, top) = (680.0, 260.0, 64.0, 36.0, 12.0);
    let max_total = cycles
        .iter()
        .map(|(_, ls)| ls.iter().map(|l| l.arr).sum::<f64>())
        .fold(1.0, f64::max);
    let band = (w - left - 16.0) / cycles.len().max(1) as f64;
    let _ = write!(
        out,
        r#"<svg class="chart" data-chart="history-{n}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>ARR per label across cycles: {n}</title>"#,
        n = escape(name)
    );
    for (i, (cycle, ls)) in cycles.iter().enumerate() {
        let x = left + band * i as f64 + band * 0.15;
        let mut y = h - bottom;
        for snapshot::LabelSummary {
            label: l,
            accounts: n,
            arr: a,
        } in ls.iter()
        {
            let k = labels.iter().position(|x| x == l).unwrap_or(0);
            let bar = (h - bottom - top) * a / max_total;
            y -= bar;
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bar:.1}" fill="{}"><title>{cycle} {}: {n} accounts, ARR {}</title></rect>"#,
                band * 0.7,
                PALETTE[k % PALETTE.len()],
                escape(l),
                terminal::money(*a)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            x + band * 0.35,
            h - bottom + 16.0,
            escape(cycle)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text></svg>"#,
        left - 6.0,
        top + 10.0,
        terminal::compact(max_total)
    );
    out.push_str("<table><tr><th>cycle</th>");
    for l in &labels {
        let k = labels.iter().position(|x| x == l).unwrap_or(0);
        let _ = write!(
            out,
            r#"<th><i class="swatch" style="background:{}"></i>{}</th>"#,
            PALETTE[k % PALETTE.len()],
            escape(l)
        );
    }
    out.push_str("</tr>");
    for (cycle, ls) in &cycles {
        let _ = write!(out, "<tr><th>{}</th>", escape(cycle));
        for l in &labels {
            match ls.iter().find(|x| &x.label == l) {
                Some(found) => {
                    let _ = write!(
                        out,
                        "<td>{} &middot; {}</td>",
                        found.accounts,
                        terminal::compact(found.arr)
                    );
                }
                None => out.push_str("<td>-</td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// Builds the report page from the committed snapshots under a root.
/// An account in a scatter.
struct Point {
    x: f64,
    y: f64,
    arr: f64,
    /// Position of its label in the segmentation's labels.
    label: usize,
    id: String,
}

/// The points a scatter draws: all of them up to [`MAX_POINTS`], else the
/// [`MAX_POINTS`] whose account id hashes lowest, in their original order.
fn drawn(points: &[Point]) -> Vec<&Point> {
    if points.len() <= MAX_POINTS {
        return points.iter().collect();
    }
    let hash = |id: &str| {
        let digest = Sha256::digest(id.as_bytes());
        u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    };
    let mut ranked: Vec<(u64, usize)> = points.iter().enumerate().map(|(i, p)| (hash(&p.id), i)).collect();
    ranked.select_nth_unstable(MAX_POINTS - 1);
    let mut keep: Vec<usize> = ranked[..MAX_POINTS].iter().map(|(_, i)| *i).collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| &points[i]).collect()
}

pub fn render(snapshots: &Snapshots) -> Result<String> {
    let store = snapshots.store();
    let manifests = snapshots.list_committed()?;
    let Some(latest) = manifests.last() else {
        return Err(Error::config(format!(
            "no committed snapshots under {}: pass --output with the root that holds them, or commit a cycle with `quadrant run`",
            store.uri()
        )));
    };
    let plan = latest.recorded_plan()?;
    let frame = snapshots
        .scan_committed(latest)?
        .collect()
        .ctx(|| format!("snapshot {}", latest.cycle))?;
    let previous = manifests.len().checked_sub(2).map(|i| &manifests[i]);
    let migration = match previous {
        Some(p) => match compare::segmentations_to_compare(p, latest, None) {
            Ok(names) => Some(Report::new(p, latest, &compare::compare(snapshots, p, latest, names)?)?),
            Err(e) => {
                tracing::warn!("no migration heat map: {e}");
                None
            }
        },
        None => None,
    };

    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>quadrant: {}</h1><p class=\"note\">Latest cycle {} (as of {}, run {}), {} accounts; {} committed cycle(s) under {}.</p>",
        escape(&plan.pipeline),
        escape(&latest.cycle),
        escape(&latest.as_of),
        escape(&latest.run_id),
        latest.rows,
        manifests.len(),
        escape(store.uri())
    );
    for s in &plan.segmentations {
        let _ = write!(
            body,
            "<section><h2>{}</h2><p class=\"note\">{}</p>",
            escape(&s.name),
            escape(&s.description)
        );
        if let (Some(x), Some(y)) = (&s.x, &s.y) {
            let _ = write!(
                body,
                "<h3>{}: accounts by {} and {}</h3>",
                escape(&latest.cycle),
                escape(x),
                escape(y)
            );
            scatter(&mut body, &frame, s, x, y);
        }
        if let (Some(m), Some(p)) = (&migration, previous)
            && let Some(r) = m.segmentations.iter().find(|r| r.name == s.name)
        {
            heat_map(&mut body, r, &p.cycle, &latest.cycle);
        }
        let _ = write!(body, "<h3>Accounts and ARR per label, by cycle</h3>");
        history(&mut body, &manifests, &s.name);
        body.push_str("</section>");
    }
    Ok(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>quadrant report: {title}</title><style>
body{{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:960px;color:#0f172a}}
h1{{font-size:22px}}h2{{font-size:18px;margin-top:36px;border-top:1px solid #e2e8f0;padding-top:16px}}h3{{font-size:14px}}
.note{{color:#475569;font-size:12px}}.legend span{{margin-right:14px;font-size:12px}}
.legend i,.swatch{{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}}
table{{border-collapse:collapse;margin:8px 0}}td,th{{border:1px solid #e2e8f0;padding:4px 8px;font-size:12px;text-align:right}}
caption{{text-align:left;font-size:12px;color:#475569;padding-bottom:4px}}
</style></head><body>{body}<script>
// Records each chart's drawn size, so a headless browser can check it rendered.
for (const c of document.querySelectorAll('[data-chart]')) {{
  const r = c.getBoundingClientRect();
  c.setAttribute('data-rendered', Math.round(r.width) + 'x' + Math.round(r.height));
}}
</script></body></html>"#,
        title = escape(&plan.pipeline)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(ids: impl Iterator<Item = usize>) -> Vec<Point> {
        ids.map(|i| Point {
            x: i as f64,
            y: 0.0,
            arr: 1.0,
            label: 0,
            id: format!("A{i:07}"),
        })
        .collect()
    }

    #[test]
    fn a_large_base_draws_the_same_sample_of_accounts_whatever_their_order() {
        let few = points(0..MAX_POINTS);
        assert_eq!(drawn(&few).len(), MAX_POINTS);

        let many = points(0..3 * MAX_POINTS);
        let forward: Vec<&str> = drawn(&many).iter().map(|p| p.id.as_str()).collect();
        assert_eq!(forward.len(), MAX_POINTS);
        assert!(forward.windows(2).all(|w| w[0] < w[1]), "kept in their order");
        // Neither the first nor the last accounts only: spread over the base.
        assert!(forward.iter().filter(|id| **id < "A0005000").count() > MAX_POINTS / 5);
        assert!(forward.iter().filter(|id| **id >= "A0010000").count() > MAX_POINTS / 5);

        let reversed = points((0..3 * MAX_POINTS).rev());
        let mut backward: Vec<&str> = drawn(&reversed).iter().map(|p| p.id.as_str()).collect();
        backward.reverse();
        assert_eq!(forward, backward);
    }
}
