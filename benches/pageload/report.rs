//! The summary of the loads: median, p95, min and max per way, the ratio to
//! direct, and every load's figure, printed as Markdown for benches/RESULTS.md.

use crate::browser::Loaded;

/// Median, p95 (nearest rank), min and max of some milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(values: &[f64]) -> Stats {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    assert!(n > 0, "no loads to summarise");
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    // nearest rank: the smallest value with at least 95 % of the loads at or below it
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Stats {
        median,
        p95: v[rank - 1],
        min: v[0],
        max: v[n - 1],
    }
}

/// One way in and its loads.
pub struct WayLoads<'a> {
    pub name: &'a str,
    pub loads: &'a [Loaded],
}

/// Prints the table of both figures, then every load.
pub fn print(ways: &[WayLoads<'_>], direct: usize) {
    for (title, pick) in [
        (
            "navigation start to done (load event and 5 API answers), from the page",
            (|l: &Loaded| l.page_ms) as fn(&Loaded) -> f64,
        ),
        (
            "wall time from Page.navigate to reading the done mark over CDP",
            |l: &Loaded| l.wall_ms,
        ),
        (
            "navigation start to the load event, from the page",
            |l: &Loaded| l.load_ms,
        ),
    ] {
        println!("\n{title} (ms, {} loads per way):\n", ways[0].loads.len());
        println!("| way | median | p95 | min | max | median / direct | p95 / direct |");
        println!("|---|---|---|---|---|---|---|");
        let base = stats(&ways[direct].loads.iter().map(pick).collect::<Vec<_>>());
        for w in ways {
            let s = stats(&w.loads.iter().map(pick).collect::<Vec<_>>());
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}× | {:.2}× |",
                w.name,
                s.median,
                s.p95,
                s.min,
                s.max,
                s.median / base.median,
                s.p95 / base.p95
            );
        }
    }
    println!("\nevery load, page figure ms (in the order run):\n");
    for w in ways {
        let all: Vec<String> = w
            .loads
            .iter()
            .map(|l| format!("{:.0}", l.page_ms))
            .collect();
        println!("- {}: {}", w.name, all.join(" "));
    }
}
