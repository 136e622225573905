//! What the bench binaries share: their command line (`[N ...] [--rounds R]`), medians, and the
//! regression gate's table.

use std::time::Duration;

/// The sizes and the number of rounds from the command line, or the defaults.
pub fn args(default_sizes: &[usize], default_rounds: usize) -> (Vec<usize>, usize) {
    let mut sizes = Vec::new();
    let mut rounds = default_rounds;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--rounds" {
            rounds = args
                .next()
                .and_then(|r| r.parse().ok())
                .expect("--rounds R");
        } else if let Ok(n) = a.replace(['_', ','], "").parse::<usize>() {
            sizes.push(n);
        }
    }
    if sizes.is_empty() {
        sizes = default_sizes.to_vec();
    }
    (sizes, rounds)
}

/// The median of `v` (the upper one of an even count).
pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// Prints the regression gate: each ratio (measured against its baseline in the same run) beside
/// its target, and whether it is met, so that a change that costs speed shows in review.
pub fn gate(title: &str, ratios: &[(&str, f64, f64)]) {
    println!("\nregression gate, {title} (ratio / target):");
    for (what, ratio, target) in ratios {
        println!(
            "  {what:<55} {ratio:>6.2} x / {target:.2} x  {}",
            if ratio <= target { "met" } else { "MISSED" }
        );
    }
}
