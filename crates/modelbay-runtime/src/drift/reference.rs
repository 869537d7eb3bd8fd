//! Reference data of a tabular model version: per-feature quantile bins and moments, used as the
//! "expected" side of drift (PSI) checks, plus an evenly spread background sample for
//! explanations. Also parses the CSV the reference data is uploaded as.
//!
//! Bins are **right-closed**: with inner edges `e0 < e1 < … < e_{k-1}` the bins are
//! `(-inf, e0], (e0, e1], …, (e_{k-1}, +inf)`, so a value equal to an edge belongs to the bin
//! below it. `FeatureReference::bin` is the one place that maps a value to a bin; the live
//! window uses it too, so both sides always bin identically.

use serde::{Deserialize, Serialize};

/// Fewer rows than this give quantiles too coarse to compare against.
pub(crate) const MIN_REFERENCE_ROWS: usize = 10;
/// Bounds memory of a drift window (`capacity × features`) and the cost of explanations.
pub(crate) const MAX_FEATURES: usize = crate::features::MAX_FEATURES;
/// Longest feature name accepted (names are metric label values).
pub(crate) const MAX_NAME_BYTES: usize = 128;
/// Deciles: enough resolution for PSI without bins that are empty in small live windows.
pub(crate) const MAX_BINS: usize = 10;
/// KernelSHAP cost grows with the background size; 100 rows is the usual compromise.
pub(crate) const BACKGROUND_ROWS: usize = 100;
/// Keeps a reference upload (and the sorting done per feature) within memory and time.
pub(crate) const MAX_CSV_ROWS: usize = 1_000_000;

/// Statistics of one feature of the reference data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeatureReference {
    pub name: String,
    /// Inner bin edges, strictly increasing; each edge is a value present in the reference data.
    /// `k` edges give `k + 1` right-closed bins (see the module docs).
    pub edges: Vec<f64>,
    /// Share of reference rows in each bin (`edges.len() + 1` values, summing to 1).
    pub proportions: Vec<f64>,
    pub mean: f64,
    /// Population standard deviation (divides by the row count).
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl FeatureReference {
    /// The bin of `x`: the number of edges strictly below it, which makes bins right-closed.
    /// O(log bins); never panics, even on edges that are not sorted.
    pub(crate) fn bin(&self, x: f64) -> usize {
        self.edges.partition_point(|&e| e < x)
    }
}

/// What the server stores for a version's reference data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReferenceStats {
    pub rows: u64,
    pub features: Vec<FeatureReference>,
    /// Per-feature mean row (the background summarised to one row).
    pub mean_row: Vec<f64>,
    /// Up to [`BACKGROUND_ROWS`] rows: row `i * n / 100` for `i = 0..100` (every row when there
    /// are at most 100), so the sample is deterministic and spread over the whole data.
    pub background: Vec<Vec<f64>>,
}

impl ReferenceStats {
    /// Builds the statistics from `rows`, each with `names.len()` finite values.
    ///
    /// Bin edges are the nearest-rank deciles (the value at sorted index `ceil(i·n/10) − 1`,
    /// `i = 1..=9`); repeated edges and edges at or above the maximum are dropped, so a 0/1
    /// feature gets 2 bins and a constant one 1 bin. As edges are data values and bins are
    /// right-closed, all copies of a tied value share one bin.
    pub(crate) fn from_rows(names: Vec<String>, rows: &[Vec<f64>]) -> Result<Self, String> {
        let width = names.len();
        if width == 0 || width > MAX_FEATURES {
            return Err(format!(
                "reference data has {width} columns; between 1 and {MAX_FEATURES} are supported"
            ));
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(format!("column name '{name}' appears more than once"));
            }
        }
        if rows.len() < MIN_REFERENCE_ROWS {
            return Err(format!(
                "reference data has {} rows; at least {MIN_REFERENCE_ROWS} are needed",
                rows.len()
            ));
        }
        for (r, row) in rows.iter().enumerate() {
            if row.len() != width {
                return Err(format!(
                    "row {} has {} values but there are {width} columns",
                    r + 1,
                    row.len()
                ));
            }
            if let Some(c) = row.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "row {}, column {} ('{}'): value {} is not a finite number",
                    r + 1,
                    c + 1,
                    names[c],
                    row[c]
                ));
            }
        }
        let n = rows.len();
        let mut features = Vec::with_capacity(width);
        let mut column = Vec::with_capacity(n);
        for (c, name) in names.into_iter().enumerate() {
            column.clear();
            column.extend(rows.iter().map(|row| row[c]));
            features.push(feature_stats(name, &mut column)?);
        }
        // Row i·n/k for i < k: every row when n ≤ 100, else the first row and then every ~n/100th.
        let picks = n.min(BACKGROUND_ROWS);
        let background = (0..picks).map(|i| rows[i * n / picks].clone()).collect();
        Ok(Self {
            rows: n as u64,
            mean_row: features.iter().map(|f| f.mean).collect(),
            features,
            background,
        })
    }
}

/// Moments and decile bins of one column; `column` is sorted in place.
fn feature_stats(name: String, column: &mut [f64]) -> Result<FeatureReference, String> {
    let n = column.len();
    let mean = column.iter().sum::<f64>() / n as f64;
    let var = column.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
    let std = var.sqrt();
    if !mean.is_finite() || !std.is_finite() {
        return Err(format!(
            "column '{name}': values are too large to summarise (mean or spread overflows); \
             rescale the feature"
        ));
    }
    column.sort_unstable_by(f64::total_cmp);
    let (min, max) = (column[0], column[n - 1]);
    let mut edges: Vec<f64> = Vec::with_capacity(MAX_BINS - 1);
    for i in 1..MAX_BINS {
        let edge = column[(i * n).div_ceil(MAX_BINS) - 1];
        // Sorted input: `edge` is never below the last edge, so `<=` only drops repeats
        // (including -0.0 after 0.0); an edge at the maximum would leave an empty top bin.
        if edge >= max || edges.last().is_some_and(|&last| edge <= last) {
            continue;
        }
        edges.push(edge);
    }
    let mut feature = FeatureReference {
        name,
        proportions: Vec::new(),
        edges,
        mean,
        std,
        min,
        max,
    };
    let mut counts = vec![0u64; feature.edges.len() + 1];
    for &v in column.iter() {
        counts[feature.bin(v)] += 1;
    }
    feature.proportions = counts.iter().map(|&k| k as f64 / n as f64).collect();
    Ok(feature)
}

/// Header names (if the CSV had a header) and the numeric rows.
pub(crate) type ParsedCsv = (Option<Vec<String>>, Vec<Vec<f64>>);

/// Parses CSV text of numeric rows into (header names if present, rows).
///
/// The first line is a header when some cell in it does not parse as a number (so a header of
/// purely numeric names is read as data). Cells are split on ',' and trimmed; header cells may
/// be wrapped in double quotes (commas inside quotes are not supported). CRLF, a UTF-8 BOM and
/// blank lines (anywhere) are accepted. Errors name the 1-based line and column.
pub(crate) fn parse_csv(text: &str) -> Result<ParsedCsv, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty());
    let Some((first_no, first)) = lines.next() else {
        return Err("the CSV is empty; expected numeric rows, optionally after a header".into());
    };
    // Counted before anything is split out, so a huge first line costs no memory.
    let columns = first.bytes().filter(|&b| b == b',').count() + 1;
    if columns > MAX_FEATURES {
        return Err(format!(
            "line {first_no} has {columns} columns; at most {MAX_FEATURES} features are supported"
        ));
    }
    let first_cells: Vec<&str> = first.split(',').map(str::trim).collect();
    let width = first_cells.len();
    let is_header = first_cells.iter().any(|c| c.parse::<f64>().is_err());
    let mut rows = Vec::new();
    let header = if is_header {
        let mut names = Vec::with_capacity(width);
        for (c, cell) in first_cells.iter().enumerate() {
            let name = cell.strip_prefix('"').and_then(|s| s.strip_suffix('"'));
            let name = name.unwrap_or(cell).trim();
            if name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
                return Err(format!(
                    "line {first_no}: header column {} is not a usable feature name (at most \
                     {MAX_NAME_BYTES} bytes, no control characters): feature names become \
                     metric labels",
                    c + 1
                ));
            }
            if name.is_empty() {
                return Err(format!(
                    "line {first_no}: header column {} has no name; name every column \
                     (an exported index column should be dropped)",
                    c + 1
                ));
            }
            names.push(name.to_string());
        }
        Some(names)
    } else {
        rows.push(parse_row(first_no, &first_cells, None)?);
        None
    };
    let mut cells = Vec::with_capacity(width);
    for (line_no, line) in lines {
        if rows.len() >= MAX_CSV_ROWS {
            return Err(format!(
                "more than {MAX_CSV_ROWS} data rows; upload a sample of the reference data"
            ));
        }
        cells.clear();
        cells.extend(line.split(',').map(str::trim));
        if cells.len() != width {
            return Err(format!(
                "line {line_no}: {} cells, but line {first_no} has {width}",
                cells.len()
            ));
        }
        rows.push(parse_row(line_no, &cells, header.as_deref())?);
    }
    if rows.is_empty() {
        return Err("the CSV has a header but no data rows".into());
    }
    Ok((header, rows))
}

/// One data line; errors name the line, the column number and, when known, its name.
fn parse_row(line_no: usize, cells: &[&str], names: Option<&[String]>) -> Result<Vec<f64>, String> {
    let mut row = Vec::with_capacity(cells.len());
    for (c, cell) in cells.iter().enumerate() {
        match cell.parse::<f64>() {
            Ok(v) if v.is_finite() => row.push(v),
            parsed => {
                let name = names.and_then(|n| n.get(c));
                let name = name.map(|n| format!(" ('{n}')")).unwrap_or_default();
                let shown: String = cell.chars().take(40).collect();
                let why = match parsed {
                    Ok(_) => "is not a finite number; remove or impute missing values",
                    Err(_) => "is not a number",
                };
                return Err(format!(
                    "line {line_no}, column {}{name}: '{shown}' {why}",
                    c + 1
                ));
            }
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("f{i}")).collect()
    }

    /// Asserts that `result` is an error mentioning every one of `wanted`.
    fn refused<T: std::fmt::Debug>(result: Result<T, String>, wanted: &[&str]) {
        let e = result.unwrap_err();
        assert!(wanted.iter().all(|w| e.contains(w)), "{e}");
    }

    #[test]
    fn csv_header_crlf_and_blank_lines() {
        let (h, rows) = parse_csv("\u{feff}\"a\", b ,c\r\n1,2,3\r\n\r\n4.5, -6 ,7e1\r\n").unwrap();
        assert_eq!(h, Some(vec!["a".to_string(), "b".into(), "c".into()]));
        assert_eq!(rows, vec![vec![1.0, 2.0, 3.0], vec![4.5, -6.0, 70.0]]);
    }

    #[test]
    fn csv_without_header() {
        let (h, rows) = parse_csv("1,2\n3,4").unwrap();
        assert_eq!(h, None);
        assert_eq!(rows, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
    }

    #[test]
    fn csv_errors_are_specific() {
        refused(parse_csv("a,b\n1,2\n3,4,5\n"), &["line 3", "3 cells"]);
        refused(
            parse_csv("a,b\n1,x\n"),
            &["line 2, column 2 ('b')", "not a number"],
        );
        for bad in ["nan", "inf", "-inf", "NaN"] {
            let text = format!("a,b\n1,2\n{bad},2\n");
            refused(parse_csv(&text), &["line 3, column 1 ('a')", "finite"]);
        }
        refused(parse_csv("nan,1\n"), &["line 1, column 1", "finite"]);
        refused(parse_csv(""), &["empty"]);
        refused(parse_csv(" \r\n\n"), &["empty"]);
        refused(parse_csv("a,b\n"), &["no data rows"]);
        refused(parse_csv(",a\n1,2\n"), &["column 1 has no name"]);
        let too_many = "x\n".to_string() + &"1\n".repeat(MAX_CSV_ROWS + 1);
        refused(parse_csv(&too_many), &["more than 1000000 data rows"]);
    }

    #[test]
    fn deciles_of_uniform_data() {
        let rows: Vec<Vec<f64>> = (0..1000).map(|i| vec![i as f64]).collect();
        let s = ReferenceStats::from_rows(names(1), &rows).unwrap();
        let f = &s.features[0];
        let deciles: Vec<f64> = (1..10).map(|i| (i * 100 - 1) as f64).collect();
        assert_eq!(f.edges, deciles);
        assert!(f.proportions.iter().all(|p| (p - 0.1).abs() < 1e-12));
        assert_eq!((f.min, f.max, f.mean), (0.0, 999.0, 499.5));
        assert!((f.std - (999_999.0f64 / 12.0).sqrt()).abs() < 1e-9);
        let bins = [99.0, 99.5, -1e9, 1e9].map(|x| f.bin(x));
        assert_eq!(bins, [0, 1, 0, 9]);
    }

    #[test]
    fn binary_constant_and_tied_features() {
        let tied = [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 4.0];
        let rows: Vec<Vec<f64>> = (0..20)
            .map(|i| vec![if i % 10 < 3 { 1.0 } else { 0.0 }, 7.0, tied[i % 10]])
            .collect();
        let s = ReferenceStats::from_rows(names(3), &rows).unwrap();
        let (binary, constant, ties) = (&s.features[0], &s.features[1], &s.features[2]);
        assert_eq!(binary.edges, vec![0.0]);
        assert_eq!(binary.proportions, vec![0.7, 0.3]);
        assert_eq!((constant.edges.len(), constant.std), (0, 0.0));
        assert_eq!(constant.proportions, vec![1.0]);
        assert_eq!(ties.edges, vec![1.0, 2.0, 3.0]);
        assert_eq!(ties.proportions, vec![0.5, 0.3, 0.1, 0.1]);
    }

    #[test]
    fn bad_input_is_refused() {
        let from = ReferenceStats::from_rows;
        let rows: Vec<Vec<f64>> = (0..9).map(|i| vec![i as f64]).collect();
        refused(from(names(1), &rows), &["9 rows", "at least 10"]);
        let mut rows: Vec<Vec<f64>> = (0..10).map(|i| vec![i as f64, 0.0]).collect();
        rows[4].pop();
        refused(from(names(2), &rows), &["row 5 has 1 values"]);
        rows[4].push(f64::NAN);
        refused(from(names(2), &rows), &["row 5, column 2 ('f1')"]);
        (rows[4][1], rows[5][1]) = (1e308, 1e308);
        refused(from(names(2), &rows), &["'f1'", "rescale"]);
        refused(from(vec![], &rows), &["0 columns"]);
        refused(from(vec!["a".into(); 2], &rows), &["'a'", "more than once"]);
        refused(from(names(MAX_FEATURES + 1), &rows), &["1025 columns"]);
    }

    #[test]
    fn background_and_mean_row() {
        let rows: Vec<Vec<f64>> = (0..1000).map(|i| vec![i as f64, (i % 7) as f64]).collect();
        let s = ReferenceStats::from_rows(names(2), &rows).unwrap();
        assert_eq!((s.rows, s.background.len()), (1000, BACKGROUND_ROWS));
        assert_eq!(s.background[0], rows[0]);
        assert_eq!(s.background[99], rows[990]);
        assert!(s.background.windows(2).all(|w| w[1][0] - w[0][0] == 10.0));
        assert_eq!(s, ReferenceStats::from_rows(names(2), &rows).unwrap());
        let mean1 = rows.iter().map(|r| r[1]).sum::<f64>() / 1000.0;
        assert_eq!(s.mean_row, vec![499.5, mean1]);
        assert_eq!(s.mean_row, [s.features[0].mean, s.features[1].mean]);
        let small = ReferenceStats::from_rows(names(2), &rows[..50]).unwrap();
        assert_eq!(small.background, rows[..50].to_vec());
        // Stored as JSON and reloaded bit-for-bit (the workspace enables float_roundtrip).
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ReferenceStats>(&json).unwrap(), s);
    }
}
