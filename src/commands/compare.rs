//! `quadrant compare`: how accounts and ARR moved between two committed
//! cycles; commits the tables and prints them.

use crate::cli::CompareArgs;
use crate::error::{Error, Result};
use crate::terminal;

use super::{Settings, committed};

pub fn compare(args: CompareArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
    let snapshots = setup.snapshots()?;
    let (first, last) = (super::parse_cycle(&args.from)?, super::parse_cycle(&args.to)?);
    if first.cadence() != last.cadence() || first >= last {
        let why = if first == last {
            "the same cycle: nothing moves between a cycle and itself"
        } else if first.cadence() != last.cadence() {
            "cycles of two cadences: their windows differ, so every difference would be the window's"
        } else {
            "--to comes before --from: compare an earlier cycle with a later one"
        };
        return Err(Error::config(format!("compare --from {first} --to {last}: {why}")));
    }
    let from = committed(&snapshots, &args.from)?;
    let to = committed(&snapshots, &args.to)?;
    let names = crate::compare::segmentations_to_compare(&from, &to, args.segmentation.as_deref())?;
    let comparison = crate::compare::compare(&snapshots, &from, &to, names)?;
    let written = crate::compare::commit(&snapshots, &from, &to, &comparison)?;
    let location = snapshots.comparison_location(&from.cycle, &to.cycle);
    let report = crate::compare::Report::new(&from, &to, &comparison)?;
    if args.json {
        let json = serde_json::json!({
            "from": from.cycle, "to": to.cycle, "run_id": written.run_id, "output": location,
            "segmentations": report.segmentations, "bridge": report.bridge,
        });
        crate::outln!("{}", serde_json::to_string_pretty(&json).expect("serializable"));
        return Ok(());
    }
    crate::outln!("{} -> {}: written to {location}", from.cycle, to.cycle);
    for seg in &report.segmentations {
        crate::outln!("\n{}: accounts (rows: {}, columns: {})", seg.name, from.cycle, to.cycle);
        let header: Vec<&str> = std::iter::once("")
            .chain(seg.columns.iter().map(String::as_str))
            .collect();
        let right: Vec<bool> = header.iter().enumerate().map(|(i, _)| i > 0).collect();
        let rows = |cell: &dyn Fn(&crate::compare::Cell) -> String| -> Vec<Vec<String>> {
            seg.rows
                .iter()
                .zip(&seg.cells)
                .map(|(label, cells)| std::iter::once(label.clone()).chain(cells.iter().map(cell)).collect())
                .collect()
        };
        crate::out!(
            "{}",
            terminal::render(&header, &rows(&|c| c.accounts.to_string()), &right)
        );
        crate::outln!("\n{}: ARR at {} -> ARR at {}", seg.name, from.cycle, to.cycle);
        crate::out!(
            "{}",
            terminal::render(
                &header,
                &rows(&|c| if c.accounts == 0 {
                    "-".into()
                } else {
                    format!("{} -> {}", terminal::compact(c.arr_start), terminal::compact(c.arr_end))
                }),
                &right
            )
        );
        crate::outln!("\n{}: retention by {} label", seg.name, from.cycle);
        let retention: Vec<Vec<String>> = seg
            .retention
            .iter()
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.accounts_start.to_string(),
                    terminal::money(r.starting_arr),
                    terminal::money(r.expansion),
                    terminal::money(r.contraction),
                    terminal::money(r.churned_arr),
                    terminal::money(r.ending_arr),
                    r.nrr.map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
                    r.grr.map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
                ]
            })
            .collect();
        crate::out!(
            "{}",
            terminal::render(
                &[
                    "label",
                    "accounts",
                    "starting ARR",
                    "expansion",
                    "contraction",
                    "churned",
                    "ending ARR",
                    "NRR",
                    "GRR"
                ],
                &retention,
                &[false, true, true, true, true, true, true, true, true]
            )
        );
    }
    let b = &report.bridge;
    crate::outln!("\nARR bridge {} -> {}", from.cycle, to.cycle);
    let bridge = vec![
        vec![
            "starting ARR".to_string(),
            terminal::money(b.starting_arr),
            b.accounts_start.to_string(),
        ],
        vec![
            "+ new".to_string(),
            terminal::money(b.new_arr),
            b.accounts_new.to_string(),
        ],
        vec!["+ expansion".to_string(), terminal::money(b.expansion), String::new()],
        vec![
            "- contraction".to_string(),
            terminal::money(b.contraction),
            String::new(),
        ],
        vec![
            "- churn".to_string(),
            terminal::money(b.churned_arr),
            b.accounts_churned.to_string(),
        ],
        vec![
            "= ending ARR".to_string(),
            terminal::money(b.ending_arr),
            b.accounts_end.to_string(),
        ],
    ];
    crate::out!(
        "{}",
        terminal::render(&["", "ARR", "accounts"], &bridge, &[false, true, true])
    );
    Ok(())
}
