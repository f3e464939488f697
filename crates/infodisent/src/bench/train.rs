//! `bench train`: seconds per training step of the InfoDisent head against the dense reference
//! (autograd through a textbook Taylor-12 exponential, dense max-pool gradient, full `F Uᵀ`
//! backward), on synthetic batches of realistic shape, with the share spent in the exponential.

use crate::error::Result;
use crate::head::expm::expm_skew;
use crate::head::linalg::orthogonality_defect;
use crate::head::{reference, Batch, Head, HeadConfig, TrainMode};
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchTrainConfig {
    /// Channel counts D to measure.
    pub dims: Vec<usize>,
    /// Images per step.
    pub batch: usize,
    /// Feature grid side (7 for 224-pixel inputs).
    pub side: usize,
    /// Classes.
    pub classes: usize,
    /// Timed steps per implementation (after one untimed warm-up step).
    pub steps: usize,
    /// Images per epoch used to convert s/step into s/epoch.
    pub epoch_images: usize,
    /// Standard deviation of the entries of A, standing in for a trained head.
    pub a_scale: f64,
    /// Seed of the synthetic data.
    pub seed: u64,
}

impl Default for BenchTrainConfig {
    fn default() -> Self {
        BenchTrainConfig {
            dims: vec![1280, 2048],
            batch: 64,
            side: 7,
            classes: 200,
            steps: 3,
            epoch_images: 60_000,
            a_scale: 0.01,
            seed: 0,
        }
    }
}

/// Timings of one implementation at one D.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImplTiming {
    /// Mean seconds per step (forward + backward).
    pub seconds_per_step: f64,
    /// Seconds per epoch of `epoch_images` images.
    pub seconds_per_epoch: f64,
    /// Mean seconds of the exponential's forward + backward alone.
    pub expm_seconds: f64,
    /// expm_seconds / seconds_per_step.
    pub expm_share: f64,
    /// Matrix products of the exponential's forward pass.
    pub expm_forward_products: usize,
}

/// Results at one D.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DimResult {
    /// Channels.
    pub dim: usize,
    /// The structured implementation (custom ops).
    pub structured: ImplTiming,
    /// The dense autograd reference.
    pub reference: ImplTiming,
    /// reference / structured seconds per step.
    pub speedup: f64,
    /// max |UᵀU − I| of the f32 rotation at this D.
    pub orthogonality_defect: f64,
    /// Largest |logit difference| between the two implementations (they compute the same thing).
    pub max_logit_difference: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchTrainReport {
    /// What was measured.
    pub config: BenchTrainConfig,
    /// Threads the kernels used.
    pub threads: usize,
    /// One entry per D.
    pub results: Vec<DimResult>,
    /// Peak resident memory of the process in bytes.
    pub peak_rss_bytes: Option<u64>,
}

fn time<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = Instant::now();
    let out = f()?;
    Ok((out, t.elapsed().as_secs_f64()))
}

fn mean_time(steps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut total = 0.0;
    for _ in 0..steps {
        total += time(&mut f)?.1;
    }
    Ok(total / steps as f64)
}

/// Runs the benchmark.
pub fn run(cfg: &BenchTrainConfig) -> Result<BenchTrainReport> {
    let mut results = Vec::new();
    let steps = cfg.steps.max(1);
    let steps_per_epoch = cfg.epoch_images.div_ceil(cfg.batch.max(1)) as f64;
    for &d in &cfg.dims {
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ d as u64);
        let cells = cfg.side * cfg.side;
        let n = cfg.batch.max(1);
        // Post-ReLU-like features: half zeros, half |N(0, 1)|-ish.
        let maps: Vec<f32> = (0..n * d * cells)
            .map(|_| (rng.random::<f32>() * 2.0 - 1.0).max(0.0) * 2.0)
            .collect();
        let labels: Vec<u32> = (0..n)
            .map(|_| rng.random_range(0..cfg.classes as u32))
            .collect();
        let batch = Batch::from_maps(&maps, labels.clone(), d, cells);
        drop(maps);
        let a: Vec<f32> = (0..d * d)
            .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * cfg.a_scale * 3f64.sqrt()) as f32)
            .collect();

        let head = Head::new(
            HeadConfig {
                w_init: 0.01,
                ..HeadConfig::default()
            },
            d,
            cfg.classes,
            cfg.seed,
        )?;
        head.vars()[0]
            .1
            .set(&Tensor::from_slice(&a, (d, d), &Device::Cpu)?)?;
        let mode = TrainMode {
            tau: 1.0,
            noise_seed: 0,
        };
        let structured_step = mean_time(steps, || {
            let logits = head.logits(&batch, Some(mode))?;
            head.loss(&logits, &labels)?.backward()?;
            Ok(())
        })?;
        let grad_u: Vec<f32> = (0..d * d).map(|_| rng.random::<f32>() - 0.5).collect();
        let mut plan = None;
        let structured_expm = mean_time(steps, || {
            let (_, tape) = expm_skew(d, &a);
            plan = Some(tape.plan());
            std::hint::black_box(tape.backward_a(&grad_u));
            Ok(())
        })?;
        let (u, _) = expm_skew(d, &a);
        let defect = orthogonality_defect(d, &u);
        drop(u);

        let vars = head.vars();
        let (w_raw, bias) = (vars[1].1.as_tensor(), vars[2].1.as_tensor());
        let a_ref = Var::from_slice(&a, (d, d), &Device::Cpu)?;
        let pixels = Tensor::from_slice(&batch.pixels, (n * cells, d), &Device::Cpu)?;
        let target = Tensor::from_slice(&labels, n, &Device::Cpu)?;
        let reference_step = mean_time(steps, || {
            let logits =
                reference::logits_dense(a_ref.as_tensor(), w_raw, bias, &pixels, n, cells)?;
            reference::cross_entropy(&logits, &target)?.backward()?;
            Ok(())
        })?;
        let g_t = Tensor::from_slice(&grad_u, (d, d), &Device::Cpu)?;
        let reference_expm = mean_time(steps, || {
            let u = reference::expm_autograd(a_ref.as_tensor())?;
            (u * &g_t)?.sum_all()?.backward()?;
            Ok(())
        })?;
        let structured_logits = head.logits(&batch, None)?;
        let reference_logits =
            reference::logits_dense(a_ref.as_tensor(), w_raw, bias, &pixels, n, cells)?;
        let diff = f64::from(
            (structured_logits - reference_logits)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?,
        );

        let timing = |step: f64, expm: f64, products: usize| ImplTiming {
            seconds_per_step: step,
            seconds_per_epoch: step * steps_per_epoch,
            expm_seconds: expm,
            expm_share: expm / step,
            expm_forward_products: products,
        };
        let ref_products =
            reference::REFERENCE_DEGREE + reference::reference_squarings(a_ref.as_tensor())?;
        results.push(DimResult {
            dim: d,
            structured: timing(
                structured_step,
                structured_expm,
                plan.map_or(0, |p| p.forward_products()),
            ),
            reference: timing(reference_step, reference_expm, ref_products),
            speedup: reference_step / structured_step,
            orthogonality_defect: defect,
            max_logit_difference: diff,
        });
    }
    Ok(BenchTrainReport {
        config: cfg.clone(),
        threads: rayon::current_num_threads(),
        results,
        peak_rss_bytes: super::peak_rss_bytes(),
    })
}

/// The report as a text table.
pub fn format_report(r: &BenchTrainReport) -> String {
    let c = &r.config;
    let mut out = format!(
        "bench train: batch {} of [D, {}, {}], {} classes, A entries sd {}, {} timed steps, {} threads; epoch = {} images\n",
        c.batch, c.side, c.side, c.classes, c.a_scale, c.steps, r.threads, c.epoch_images
    );
    out.push_str(&format!(
        "{:>5} {:<11} {:>9} {:>10} {:>9} {:>6} {:>9}\n",
        "D", "impl", "s/step", "s/epoch", "expm s", "expm%", "products"
    ));
    for d in &r.results {
        for (name, t) in [("structured", &d.structured), ("dense ref", &d.reference)] {
            out.push_str(&format!(
                "{:>5} {:<11} {:>9.3} {:>10.1} {:>9.3} {:>5.0}% {:>9}\n",
                d.dim,
                name,
                t.seconds_per_step,
                t.seconds_per_epoch,
                t.expm_seconds,
                100.0 * t.expm_share,
                t.expm_forward_products
            ));
        }
        out.push_str(&format!(
            "{:>5} speed-up {:.2}x per step; max|UᵀU − I| = {:.2e} (f32); max logit difference {:.2e}\n",
            d.dim, d.speedup, d.orthogonality_defect, d.max_logit_difference
        ));
    }
    if let Some(b) = r.peak_rss_bytes {
        out.push_str(&format!(
            "peak RSS: {:.0} MiB\n",
            b as f64 / (1024.0 * 1024.0)
        ));
    }
    out
}
