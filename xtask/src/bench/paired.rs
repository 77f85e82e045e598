//! Interleaved comparisons. Measuring a baseline and then a candidate minutes apart on an
//! emulated CPU cannot tell a 2 % cost from drift (the same ratio moved from 0.97 to 1.64
//! between two runs). Here short batches of the two alternate in one boot, the side that goes
//! first alternating too, and each batch is the fastest of a few runs; each pair gives one ratio,
//! reported as the median of the pairs with their spread (min, max).

use anyhow::Result;

use super::guest::Row;

/// Pairs per comparison.
pub(super) const PAIRS: usize = 15;

/// Batch results of a baseline and a candidate, one of each per pair.
#[derive(Default)]
pub(super) struct Pairs {
    base: Vec<f64>,
    cand: Vec<f64>,
}

impl Pairs {
    /// `PAIRS` pairs of one `base` and one `cand` batch, alternating which runs first.
    pub(super) fn measure(
        mut base: impl FnMut() -> Result<f64>,
        mut cand: impl FnMut() -> Result<f64>,
    ) -> Result<Self> {
        let mut pairs = Pairs::default();
        for i in 0..PAIRS {
            let (b, c) = if i % 2 == 0 {
                let b = base()?;
                (b, cand()?)
            } else {
                let c = cand()?;
                (base()?, c)
            };
            pairs.push(b, c);
        }
        Ok(pairs)
    }

    pub(super) fn push(&mut self, base: f64, cand: f64) {
        self.base.push(base);
        self.cand.push(cand);
    }

    /// The candidate's median batch, with the median, min and max of the pair ratios.
    pub(super) fn row(&self, name: String, unit: &'static str, baseline: &str) -> Row {
        let ratios: Vec<f64> = self
            .cand
            .iter()
            .zip(&self.base)
            .map(|(c, b)| c / b)
            .collect();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Row::paired(
            name,
            median(&self.cand),
            unit,
            baseline,
            median(&self.base),
            (median(&ratios), min, max, ratios.len()),
        )
    }
}

/// Runs per batch, of which the fastest counts: interference on the host only ever slows a run
/// down, so the minimum is the least disturbed estimate.
pub(super) const RUNS_PER_BATCH: usize = 3;

/// The fastest of `RUNS_PER_BATCH` runs of `f`.
pub(super) fn fastest(mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..RUNS_PER_BATCH {
        best = best.min(f()?);
    }
    Ok(best)
}

pub(super) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_the_median_of_the_pairs_not_of_the_medians() {
        let mut p = Pairs::default();
        // Drift: both sides slow down together; each pair still says 1.1.
        for (b, c) in [(10.0, 11.0), (20.0, 22.0), (40.0, 44.0)] {
            p.push(b, c);
        }
        let row = p.row("x".into(), "ns/op", "y");
        let (ratio, min, max, n) = row.pairs().unwrap();
        assert!((ratio - 1.1).abs() < 1e-9 && (min - 1.1).abs() < 1e-9 && (max - 1.1).abs() < 1e-9);
        assert_eq!(n, 3);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
