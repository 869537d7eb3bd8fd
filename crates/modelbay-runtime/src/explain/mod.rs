//! Explanations of tabular predictions: KernelSHAP attributions per row, feature and output,
//! with the version's reference data as background. Model-agnostic (the model is only run, on
//! the same sessions as inference) and deterministic for a seed.

mod kernel_shap;
mod permits;

pub(crate) use permits::ExplainPermits;

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use modelbay_core::{Caller, DataType, InferRequest, ValidInferRequest};
use serde::Serialize;

use crate::{
    features::{as_f64, FeatureLayout},
    Error, LoadedModel, Result, Routed, Runtime,
};

/// Most rows one explain request may ask about.
pub(crate) const MAX_EXPLAINED_ROWS: usize = 32;
/// Most coalitions (`samples`) per explained row.
pub(crate) const MAX_SAMPLES: usize = 20_000;
/// Most model evaluations (coalitions × background rows × explained rows) per request: about
/// ten seconds of a tree ensemble on two cores.
pub(crate) const MAX_EVALUATIONS: usize = 4_000_000;
/// Background rows used by default (fewer when the reference sample is smaller).
pub(crate) const DEFAULT_BACKGROUND_ROWS: usize = 50;
/// Rows per engine run while evaluating coalitions.
const CHUNK_ROWS: usize = 8192;
/// Probabilities are clamped to `[P, 1 - P]` before the logit link.
const LOGIT_CLAMP: f64 = 1e-12;

/// The scale outputs are explained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// The output itself.
    #[default]
    Identity,
    /// `ln(p / (1 - p))` of a probability output, applied to every evaluation (so a logistic
    /// model's attributions are exactly linear on this scale).
    Logit,
}

impl Link {
    fn apply(self, value: f64) -> f64 {
        match self {
            Self::Identity => value,
            Self::Logit => {
                let p = value.clamp(LOGIT_CLAMP, 1.0 - LOGIT_CLAMP);
                (p / (1.0 - p)).ln()
            }
        }
    }
}

/// What the background (the "feature absent" values) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// This many rows spread evenly over the reference data's background sample (`None`: up to
    /// [`DEFAULT_BACKGROUND_ROWS`]).
    Sample(Option<usize>),
    /// The reference data's mean row alone.
    Mean,
}

/// How to explain.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    pub link: Link,
    /// Coalitions per row; `None`: all of them when `2^M - 2 <= 2M + 2048`, else `2M + 2048`.
    pub samples: Option<usize>,
    pub seed: u64,
    pub background: Background,
}

impl Default for ExplainOptions {
    fn default() -> Self {
        Self {
            link: Link::Identity,
            samples: None,
            seed: 0,
            background: Background::Sample(None),
        }
    }
}

/// Attributions of one output column for one row.
#[derive(Debug, Clone, Serialize)]
pub struct OutputAttribution {
    pub output: String,
    /// Column of the output (0 for a one-column output).
    pub index: usize,
    /// The model's value for the row, on the link's scale.
    pub value: f64,
    /// The mean value over the background, on the link's scale.
    pub base_value: f64,
    /// One per feature; they add up to `value - base_value`.
    pub attributions: Vec<f64>,
}

/// An explained row.
#[derive(Debug, Clone, Serialize)]
pub struct RowExplanation {
    pub outputs: Vec<OutputAttribution>,
}

/// The answer to an explain request.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub model_name: String,
    /// As in v2 inference responses, a string.
    pub model_version: String,
    pub method: &'static str,
    pub link: Link,
    pub seed: u64,
    /// Coalitions evaluated per row.
    pub coalitions: usize,
    /// Whether every coalition was evaluated (exact Shapley values for this background).
    pub exact: bool,
    pub background_rows: usize,
    pub features: Vec<String>,
    pub rows: Vec<RowExplanation>,
}

/// A float output of the model.
struct Explained {
    name: String,
}

impl Runtime {
    /// Explains the routed version's predictions for the rows of `req`.
    pub async fn explain(
        &self,
        caller: &Caller,
        routed: &Routed,
        req: InferRequest,
        options: ExplainOptions,
    ) -> Result<Explanation> {
        let model = &routed.model;
        model.serves_v2()?;
        let layout = FeatureLayout::of(&model.record.signature)?;
        let name = routed.name.clone();
        let monitor = self.monitor(&name, model.record.version).await?;
        let explicit_outputs = !req.outputs.is_empty();
        let valid = ValidInferRequest::new(req, &model.record.signature)?;
        let outputs = explained_outputs(model, &valid.outputs, explicit_outputs)?;
        let count = valid
            .inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(0);
        if count == 0 || count > MAX_EXPLAINED_ROWS {
            return Err(Error::Unsupported(format!(
                "explain takes 1 to {MAX_EXPLAINED_ROWS} rows per request, got {count}"
            )));
        }
        // Explanations run the model on millions of rows: a few at a time per caller and per
        // process.
        let _turn = self.explains.try_turn(caller)?;
        let rows = layout.rows(&valid.inputs)?;
        let background = background_rows(&monitor.stats, options.background)?;
        let features = layout.width();
        let budget = coalition_budget(features, options.samples)?;
        let plan = kernel_shap::plan(features, budget, options.seed);
        let evaluations = plan
            .masks
            .len()
            .saturating_mul(background.len())
            .saturating_mul(rows.len());
        if evaluations > MAX_EVALUATIONS {
            return Err(Error::Unsupported(format!(
                "{} coalitions × {} background rows × {} rows = {evaluations} model evaluations; \
                 the limit is {MAX_EVALUATIONS}: lower samples or background_rows, or send fewer \
                 rows",
                plan.masks.len(),
                background.len(),
                rows.len()
            )));
        }
        let evaluator = Evaluator {
            model: model.clone(),
            layout: &layout,
            outputs: &outputs,
            link: options.link,
            widths: std::sync::OnceLock::new(),
        };
        let base = mean_columns(&evaluator.run_rows(&background).await?);
        let full_values = evaluator.run_rows(&rows).await?;
        // Coalition rows are built a chunk at a time: all of them at once could take gigabytes.
        let masks_per_chunk = (CHUNK_ROWS / background.len()).max(1);
        let mut explained = Vec::with_capacity(rows.len());
        for (row, full) in rows.iter().zip(full_values) {
            let chunks = CoalitionRows {
                masks: plan.masks.chunks(masks_per_chunk),
                row,
                background: &background,
            };
            let values: Vec<Vec<f64>> = evaluator
                .run(chunks)
                .await?
                .chunks(background.len())
                .map(mean_columns)
                .collect();
            let phi = kernel_shap::solve(&plan, &values, &base, &full);
            explained.push(RowExplanation {
                outputs: label_columns(&outputs, &evaluator.widths()?, &full, &base, phi),
            });
        }
        Ok(Explanation {
            model_name: model.record.model.clone(),
            model_version: model.record.version.to_string(),
            method: "kernel_shap",
            link: options.link,
            seed: options.seed,
            coalitions: plan.masks.len(),
            exact: plan.exact,
            background_rows: background.len(),
            features: monitor
                .stats
                .features
                .iter()
                .map(|f| f.name.clone())
                .collect(),
            rows: explained,
        })
    }
}

/// The outputs to explain: the float outputs among those requested (asking for a non-float one
/// by name is an error; among all outputs, labels and other non-float ones are skipped).
fn explained_outputs(
    model: &LoadedModel,
    requested: &[String],
    explicit: bool,
) -> Result<Vec<Explained>> {
    let mut outputs = Vec::new();
    for name in requested {
        let Some(spec) = model.record.signature.output(name) else {
            continue;
        };
        let float = matches!(
            spec.datatype,
            DataType::Fp16 | DataType::Bf16 | DataType::Fp32 | DataType::Fp64
        );
        if !float {
            if explicit {
                return Err(Error::Unsupported(format!(
                    "output {} is not a float output; explanations attribute numeric scores \
                     (probabilities, regression values)",
                    spec.describe()
                )));
            }
            continue;
        }
        outputs.push(Explained { name: name.clone() });
    }
    if outputs.is_empty() {
        return Err(Error::Unsupported(
            "the model has no float output to explain".into(),
        ));
    }
    Ok(outputs)
}

fn coalition_budget(features: usize, samples: Option<usize>) -> Result<usize> {
    let default = 2 * features + 2048;
    match samples {
        None => Ok(default),
        Some(n) if (2..=MAX_SAMPLES).contains(&n) => Ok(n),
        Some(n) => Err(Error::Unsupported(format!(
            "samples must be between 2 and {MAX_SAMPLES}, got {n}"
        ))),
    }
}

fn background_rows(
    stats: &crate::drift::ReferenceStats,
    background: Background,
) -> Result<Vec<Vec<f64>>> {
    match background {
        Background::Mean => Ok(vec![stats.mean_row.clone()]),
        Background::Sample(n) => {
            let available = stats.background.len();
            let n = n.unwrap_or(DEFAULT_BACKGROUND_ROWS.min(available));
            if n == 0 || n > available {
                return Err(Error::Unsupported(format!(
                    "background_rows must be between 1 and {available} (the reference sample)"
                )));
            }
            // Evenly spread over the stored sample.
            Ok((0..n)
                .map(|i| stats.background[i * available / n].clone())
                .collect())
        }
    }
}

/// The model inputs of coalitions, a chunk of masks at a time: each mask with every background
/// row.
struct CoalitionRows<'a> {
    masks: std::slice::Chunks<'a, Vec<bool>>,
    row: &'a [f64],
    background: &'a [Vec<f64>],
}

impl Iterator for CoalitionRows<'_> {
    type Item = Vec<Vec<f64>>;

    fn next(&mut self) -> Option<Self::Item> {
        let masks = self.masks.next()?;
        Some(
            masks
                .iter()
                .flat_map(|mask| self.background.iter().map(|b| mix(mask, self.row, b)))
                .collect(),
        )
    }
}

/// A row whose features in the coalition come from `row`, the rest from `background`.
fn mix(mask: &[bool], row: &[f64], background: &[f64]) -> Vec<f64> {
    mask.iter()
        .zip(row.iter().zip(background))
        .map(|(&present, (&x, &b))| if present { x } else { b })
        .collect()
}

/// Column means of equally long rows.
fn mean_columns(rows: &[Vec<f64>]) -> Vec<f64> {
    let width = rows.first().map_or(0, Vec::len);
    let mut sums = vec![0.0; width];
    for row in rows {
        for (sum, x) in sums.iter_mut().zip(row) {
            *sum += x;
        }
    }
    sums.iter().map(|s| s / rows.len().max(1) as f64).collect()
}

fn label_columns(
    outputs: &[Explained],
    widths: &[usize],
    full: &[f64],
    base: &[f64],
    phi: Vec<Vec<f64>>,
) -> Vec<OutputAttribution> {
    let labels = outputs
        .iter()
        .zip(widths)
        .flat_map(|(o, &width)| (0..width).map(move |index| (o.name.clone(), index)));
    labels
        .zip(phi)
        .enumerate()
        .map(|(k, ((output, index), attributions))| OutputAttribution {
            output,
            index,
            value: full[k],
            base_value: base[k],
            attributions,
        })
        .collect()
}

/// Runs feature rows through the model and returns, per row, every explained output column
/// on the link's scale.
struct Evaluator<'a> {
    model: Arc<LoadedModel>,
    layout: &'a FeatureLayout,
    outputs: &'a [Explained],
    link: Link,
    /// Columns of each output, as the first run returned them (signatures may leave them
    /// dynamic); every later run must agree.
    widths: std::sync::OnceLock<Vec<usize>>,
}

impl Evaluator<'_> {
    async fn run_rows(&self, rows: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        self.run(rows.chunks(CHUNK_ROWS).map(<[_]>::to_vec)).await
    }

    /// Runs chunks of rows, two at a time (each is one engine run), made as they are needed.
    async fn run(&self, chunks: impl Iterator<Item = Vec<Vec<f64>>>) -> Result<Vec<Vec<f64>>> {
        let names: Vec<String> = self.outputs.iter().map(|o| o.name.clone()).collect();
        let results: Vec<Vec<Vec<f64>>> = futures::stream::iter(chunks)
            .map(|chunk| {
                let names = names.clone();
                async move {
                    let inputs = self.layout.tensors(&chunk)?;
                    let tensors = self.model.run_tensors(inputs, names).await?;
                    self.columns(chunk.len(), &tensors)
                }
            })
            .buffered(2)
            .try_collect()
            .await?;
        Ok(results.into_iter().flatten().collect())
    }

    /// Per row, the explained columns of every output, in output order, from the shapes the
    /// model returned.
    fn columns(&self, rows: usize, tensors: &[modelbay_core::Tensor]) -> Result<Vec<Vec<f64>>> {
        let mut widths = Vec::with_capacity(tensors.len());
        let mut per_row = vec![Vec::new(); rows];
        for (explained, tensor) in self.outputs.iter().zip(tensors) {
            let shape = tensor.shape();
            if shape.first() != Some(&rows) {
                return Err(Error::Unsupported(format!(
                    "output '{}' came back with shape {shape:?} for {rows} rows; explanations \
                     need one output row per input row",
                    explained.name
                )));
            }
            let width: usize = shape[1..].iter().product();
            widths.push(width);
            let values = as_f64(tensor.data());
            for (row, chunk) in per_row.iter_mut().zip(values.chunks(width.max(1))) {
                row.extend(chunk.iter().map(|&v| self.link.apply(v)));
            }
        }
        if *self.widths.get_or_init(|| widths.clone()) != widths {
            return Err(Error::Unsupported(
                "the model's outputs changed width between runs; it cannot be explained".into(),
            ));
        }
        Ok(per_row)
    }

    fn widths(&self) -> Result<Vec<usize>> {
        self.widths
            .get()
            .cloned()
            .ok_or_else(|| Error::WorkerLost("explanation ran no evaluation".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_is_clamped_and_inverts_the_sigmoid() {
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        for z in [-5.0, -0.3, 0.0, 2.5] {
            assert!((Link::Logit.apply(sigmoid(z)) - z).abs() < 1e-12);
        }
        assert!(Link::Logit.apply(1.0).is_finite() && Link::Logit.apply(0.0).is_finite());
        assert_eq!(Link::Identity.apply(0.25), 0.25);
    }

    #[test]
    fn coalitions_mix_the_row_and_the_background() {
        assert_eq!(
            mix(&[true, false, true], &[1.0, 2.0, 3.0], &[9.0, 8.0, 7.0]),
            [1.0, 8.0, 3.0]
        );
        assert_eq!(mean_columns(&[vec![1.0, 2.0], vec![3.0, 6.0]]), [2.0, 4.0]);
        assert!(coalition_budget(30, Some(1)).is_err());
        assert_eq!(coalition_budget(30, None).unwrap(), 2108);
    }
}
