//! Live drift of one version's inputs: a sliding window over the last `capacity` accepted rows,
//! binned exactly like the reference (right-closed bins, via `FeatureReference::bin`), and the
//! Population Stability Index (PSI) of each feature against the reference.
//!
//! Memory: the window keeps, per row and feature, the bin index (`u8`) and the raw value
//! (`f64`), i.e. 9 bytes per cell: 10_000 rows × 30 features ≈ 2.7 MB. The raw values make
//! `live_mean` exact (summed oldest to newest at report time) instead of a running sum that
//! would accumulate rounding error as values enter and leave. The ring grows as rows arrive and
//! is then overwritten in place, so a version without traffic costs nothing and a full window
//! allocates nothing per row.

use std::sync::Arc;

use serde::Serialize;

use super::reference::{FeatureReference, ReferenceStats};

/// PSI above this flags a feature as drifted (the customary "significant shift" level).
pub(crate) const PSI_THRESHOLD: f64 = 0.2;
/// Below this many rows in the window, PSI is too noisy to flag anything.
pub(crate) const MIN_ROWS: usize = 100;
/// Share given to empty bins before renormalising, so PSI stays finite.
pub(crate) const PSI_EPSILON: f64 = 1e-4;
/// Cap on `capacity × features` (≈ 150 MB at 9 bytes a cell); larger capacities are clamped.
pub(crate) const MAX_WINDOW_CELLS: usize = 1 << 24;

/// Live statistics of one version's inputs over the last `capacity` rows.
pub(crate) struct DriftWindow {
    reference: Arc<ReferenceStats>,
    capacity: usize,
    /// Bin index of each cell, row-major (`rows × features`), in ring order.
    bins: Vec<u8>,
    /// Raw value of each cell, laid out like `bins`.
    values: Vec<f64>,
    /// Rows currently in the window (`bins.len() / features` once any row arrived).
    len: usize,
    /// When full: the ring slot of the oldest row, i.e. the next one to overwrite.
    oldest: usize,
    /// Per feature, rows of the window in each bin.
    counts: Vec<Vec<u64>>,
    /// Whether a feature's reference bins are well formed (fit `u8`, match the proportions);
    /// a malformed stored reference yields `psi: None` for that feature rather than a panic.
    usable: Vec<bool>,
    total: u64,
    skipped: u64,
}

impl DriftWindow {
    /// `capacity` is clamped to `1..=MAX_WINDOW_CELLS / features`.
    pub(crate) fn new(reference: Arc<ReferenceStats>, capacity: usize) -> Self {
        let features = reference.features.len();
        let capacity = capacity.clamp(1, (MAX_WINDOW_CELLS / features.max(1)).max(1));
        let usable = reference.features.iter().map(well_formed).collect();
        let counts = reference
            .features
            .iter()
            .map(|f| vec![0; f.edges.len() + 1])
            .collect();
        Self {
            reference,
            capacity,
            bins: Vec::new(),
            values: Vec::new(),
            len: 0,
            oldest: 0,
            counts,
            usable,
            total: 0,
            skipped: 0,
        }
    }

    /// Records rows; those of the wrong length or with a non-finite value are counted in
    /// `skipped_rows` and otherwise ignored. When the window is full the oldest row leaves.
    pub(crate) fn observe(&mut self, rows: impl IntoIterator<Item = impl AsRef<[f64]>>) {
        let width = self.reference.features.len();
        for row in rows {
            let row = row.as_ref();
            if row.len() != width || !row.iter().all(|v| v.is_finite()) {
                self.skipped += 1;
                continue;
            }
            self.total += 1;
            let slot = if self.len < self.capacity {
                self.len += 1;
                self.bins.resize(self.len * width, 0);
                self.values.resize(self.len * width, 0.0);
                self.len - 1
            } else {
                let slot = self.oldest;
                self.oldest = (self.oldest + 1) % self.capacity;
                for (j, &bin) in self.bins[slot * width..(slot + 1) * width]
                    .iter()
                    .enumerate()
                {
                    if let Some(count) = self.counts[j].get_mut(usize::from(bin)) {
                        *count = count.saturating_sub(u64::from(self.usable[j]));
                    }
                }
                slot
            };
            let cells = slot * width..(slot + 1) * width;
            self.values[cells.clone()].copy_from_slice(row);
            for (j, (cell, &x)) in self.bins[cells].iter_mut().zip(row).enumerate() {
                let bin = self.reference.features[j].bin(x);
                *cell = u8::try_from(bin).unwrap_or(0);
                if self.usable[j] {
                    self.counts[j][bin] += 1;
                }
            }
        }
    }

    /// A snapshot for the API and the metrics. O(window cells) for the exact live means.
    pub(crate) fn report(&self) -> DriftReport {
        let width = self.reference.features.len();
        let mut sums = vec![0.0f64; width];
        // Oldest to newest, so the mean is the plain left-to-right mean of the window's rows.
        let order = (self.oldest..self.len).chain(0..self.oldest.min(self.len));
        for slot in order {
            for (sum, v) in sums
                .iter_mut()
                .zip(&self.values[slot * width..(slot + 1) * width])
            {
                *sum += v;
            }
        }
        let features = self.reference.features.iter().enumerate().map(|(j, f)| {
            let seen = self.len > 0;
            let psi = (seen && self.usable[j]).then(|| psi(&f.proportions, &self.counts[j]));
            FeatureDrift {
                name: f.name.clone(),
                psi,
                drifted: self.len >= MIN_ROWS && psi.is_some_and(|p| p > PSI_THRESHOLD),
                reference_mean: f.mean,
                live_mean: Some(sums[j] / self.len as f64).filter(|m| seen && m.is_finite()),
            }
        });
        DriftReport {
            window_rows: self.capacity,
            observed_rows: self.len,
            total_rows: self.total,
            skipped_rows: self.skipped,
            threshold: PSI_THRESHOLD,
            min_rows: MIN_ROWS,
            features: features.collect(),
        }
    }
}

/// Whether the window can bin against `f`: ≤ 256 bins (indices are stored as `u8`) and one
/// proportion per bin. Always true for references built by `ReferenceStats::from_rows`.
fn well_formed(f: &FeatureReference) -> bool {
    f.edges.len() < 256 && f.proportions.len() == f.edges.len() + 1
}

/// A snapshot of a window, for the API and the metrics.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// The window's capacity in rows (after clamping).
    pub window_rows: usize,
    /// Rows currently in the window.
    pub observed_rows: usize,
    /// Rows accepted since the window was created (skipped rows not included).
    pub total_rows: u64,
    pub skipped_rows: u64,
    pub threshold: f64,
    /// Below this many observed rows no feature is flagged.
    pub min_rows: usize,
    pub features: Vec<FeatureDrift>,
}

/// Drift of one feature.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureDrift {
    pub name: String,
    /// None when the window is empty (or the stored reference of this feature is malformed).
    pub psi: Option<f64>,
    pub drifted: bool,
    pub reference_mean: f64,
    /// Exact mean of the feature over the window; None when the window is empty.
    pub live_mean: Option<f64>,
}

/// PSI = Σ (a_i − e_i) · ln(a_i / e_i), with `a` the live shares (`actual_counts` / total) and
/// `e` the reference shares. Shares are clamped to `PSI_EPSILON..=1` (so empty bins, and
/// NaN or out-of-range values in a bad reference, count as 1e-4) and each side is then
/// renormalised to sum to 1, so the result is finite and ≥ 0. A bin missing on one side counts
/// as empty; no live rows at all gives 0.
pub(crate) fn psi(expected: &[f64], actual_counts: &[u64]) -> f64 {
    let bins = expected.len().max(actual_counts.len());
    let total: f64 = actual_counts.iter().map(|&k| k as f64).sum();
    if total == 0.0 {
        return 0.0;
    }
    let share = |x: f64| {
        if x >= PSI_EPSILON {
            x.min(1.0)
        } else {
            PSI_EPSILON
        }
    };
    let e = |i: usize| share(expected.get(i).copied().unwrap_or(0.0));
    let a = |i: usize| share(actual_counts.get(i).map_or(0.0, |&k| k as f64 / total));
    let (e_sum, a_sum) = (0..bins).fold((0.0, 0.0), |(es, as_), i| (es + e(i), as_ + a(i)));
    (0..bins)
        .map(|i| {
            let (ei, ai) = (e(i) / e_sum, a(i) / a_sum);
            (ai - ei) * (ai / ei).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64, so the tests need no `rand` and are reproducible.
    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// 2000 rows: a bell-shaped, a uniform, a 0/1 and a small-integer (tied) feature.
    fn reference() -> (Arc<ReferenceStats>, Vec<Vec<f64>>) {
        let mut rng = Rng(42);
        let rows: Vec<Vec<f64>> = (0..2000)
            .map(|_| {
                let bell = (0..4).map(|_| rng.unit()).sum::<f64>() * 3.0;
                let binary = f64::from(u8::from(rng.unit() < 0.3));
                vec![bell, rng.unit() * 10.0, binary, (rng.unit() * 5.0).floor()]
            })
            .collect();
        let names = ["bell", "uniform", "binary", "level"].map(String::from);
        let stats = ReferenceStats::from_rows(names.to_vec(), &rows).unwrap();
        (Arc::new(stats), rows)
    }

    /// The rows with the first feature moved by `by`.
    fn shifted(rows: &[Vec<f64>], by: f64) -> Vec<Vec<f64>> {
        let shift = |r: &Vec<f64>| [&[r[0] + by], &r[1..]].concat();
        rows.iter().map(shift).collect()
    }

    /// (PSI, drifted) of each feature.
    fn drift(window: &DriftWindow) -> Vec<(f64, bool)> {
        let report = window.report();
        report
            .features
            .iter()
            .map(|f| (f.psi.unwrap(), f.drifted))
            .collect()
    }

    #[test]
    fn reference_rows_do_not_drift() {
        let (reference, rows) = reference();
        let mut whole = DriftWindow::new(reference.clone(), 5000);
        whole.observe(&rows);
        assert!(drift(&whole).iter().all(|&(p, _)| p.abs() < 1e-12));
        let mut window = DriftWindow::new(reference, 1000);
        window.observe(&rows);
        let report = window.report();
        assert_eq!((report.window_rows, report.observed_rows), (1000, 1000));
        let d = drift(&window);
        assert!(d.iter().all(|&(p, drifted)| p < 0.02 && !drifted), "{d:?}");
    }

    #[test]
    fn shifted_feature_drifts_alone_and_window_forgets() {
        let (reference, rows) = reference();
        let shift = 1.5 * reference.features[0].std;
        let mut window = DriftWindow::new(reference, 500);
        window.observe(shifted(&rows[..500], shift));
        let d = drift(&window);
        assert!(d[0].0 > PSI_THRESHOLD && d[0].1, "{d:?}");
        assert!(
            d[1..].iter().all(|&(p, drifted)| p < 0.05 && !drifted),
            "{d:?}"
        );
        window.observe(&rows[500..1000]);
        let d = drift(&window);
        assert!(d.iter().all(|&(p, drifted)| p < 0.05 && !drifted), "{d:?}");
    }

    #[test]
    fn nothing_flagged_below_min_rows() {
        let (reference, rows) = reference();
        let mut window = DriftWindow::new(reference, 1000);
        let empty = window.report();
        assert!(empty
            .features
            .iter()
            .all(|f| f.psi.is_none() && f.live_mean.is_none()));
        window.observe(shifted(&rows[..MIN_ROWS - 1], 100.0));
        let d = drift(&window);
        assert!(
            d[0].0 > 1.0 && d.iter().all(|&(_, drifted)| !drifted),
            "{d:?}"
        );
        window.observe(shifted(&rows[MIN_ROWS - 1..MIN_ROWS], 100.0));
        assert!(drift(&window)[0].1);
    }

    #[test]
    fn skipped_rows_and_exact_live_mean() {
        let (reference, rows) = reference();
        let mut window = DriftWindow::new(reference, 300);
        let nan = vec![1.0, f64::NAN, 0.0, 0.0];
        let bad = [vec![1.0; 3], nan, vec![f64::INFINITY, 0.0, 0.0, 0.0]];
        window.observe(&bad);
        window.observe(&rows[..1234]);
        window.observe(&bad[..1]);
        let report = window.report();
        assert_eq!((report.skipped_rows, report.total_rows), (4, 1234));
        assert_eq!(report.observed_rows, 300);
        for (j, f) in report.features.iter().enumerate() {
            let expected = rows[934..1234].iter().map(|r| r[j]).sum::<f64>() / 300.0;
            assert_eq!(f.live_mean, Some(expected), "feature {j}");
        }
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"skipped_rows\":4"), "{json}");
    }

    #[test]
    fn malformed_reference_does_not_panic() {
        let (reference, _) = reference();
        let mut broken = (*reference).clone();
        broken.features[0].proportions.pop();
        broken.features[1].edges = (0..300).map(f64::from).collect();
        let mut window = DriftWindow::new(Arc::new(broken), 0);
        window.observe([[299.5, 299.5, 0.0, 1.0], [1.0, 2.0, 1.0, 3.0]]);
        let report = window.report();
        assert_eq!((report.window_rows, report.observed_rows), (1, 1));
        let psis: Vec<_> = report.features.iter().map(|f| f.psi.is_some()).collect();
        assert_eq!(psis, [false, false, true, true]);
    }

    #[test]
    fn psi_values() {
        assert_eq!(psi(&[0.25, 0.25, 0.5], &[10, 10, 20]), 0.0);
        // (0.8 − 0.5)·ln(0.8/0.5) + (0.2 − 0.5)·ln(0.2/0.5) = 0.3·ln 1.6 + 0.3·ln 2.5 = 0.3·ln 4.
        assert!((psi(&[0.5, 0.5], &[80, 20]) - 0.3 * 4f64.ln()).abs() < 1e-12);
        // Empty live bin: shares become (1, 1e-4) / 1.0001, a large but finite PSI.
        let empty_bin = psi(&[0.5, 0.5], &[100, 0]);
        assert!(
            empty_bin.is_finite() && (3.0..5.0).contains(&empty_bin),
            "{empty_bin}"
        );
        let bad_reference = psi(&[f64::MAX, -1.0, f64::NAN, f64::INFINITY], &[1, 2, 0, 0, 3]);
        assert!(bad_reference.is_finite() && bad_reference > 0.0);
        assert_eq!(psi(&[0.5, 0.5], &[0, 0]), 0.0);
    }
}
