//! `bench train`: seconds per training step of the InfoDisent head (forward, backward, AdamW,
//! and the rebase of the dynamic trivialization), the GFLOP/s of its GEMMs against a GEMM peak
//! measured in the same run, and, given a Python with PyTorch, the straightforward PyTorch step
//! (`python/train_torch.py` in this crate) timed in the same run for the ratio.

use candle_core::{Device, Tensor};
use infodisent::error::{Error, Result};
use infodisent::head::linalg::{gemm_flops, matmul, orthogonality_defect};
use infodisent::head::{
    reference, Head, HeadConfig, Parametrization, PixelBatch, TrainMode, DEFAULT_FRAME_PER_CLASS,
};
use infodisent::optim::Hyper;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The PyTorch reference step, shipped inside the binary so it runs from any folder.
const TORCH_SCRIPT: &str = include_str!("../python/train_torch.py");

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
    /// Timed steps per implementation.
    pub steps: usize,
    /// Untimed steps before them, on both sides: the first few of a run are not typical (Adam's
    /// first updates are nearly sign vectors, so the dynamic rotation's first rebases need a
    /// higher-degree exponential).
    pub warmup: usize,
    /// Images per epoch used to convert s/step into s/epoch.
    pub epoch_images: usize,
    /// Standard deviation of the entries of A, standing in for a trained head.
    pub a_scale: f64,
    /// Seed of the synthetic data.
    pub seed: u64,
    /// A Python interpreter with PyTorch: time the PyTorch reference step too.
    pub torch_python: Option<PathBuf>,
}

impl Default for BenchTrainConfig {
    fn default() -> Self {
        BenchTrainConfig {
            dims: vec![1280, 2048],
            batch: 256,
            side: 7,
            classes: 200,
            steps: 3,
            warmup: 8,
            epoch_images: 60_000,
            a_scale: 0.01,
            seed: 0,
            torch_python: None,
        }
    }
}

/// One way of training the rotation, timed at one D.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantTiming {
    /// `static` (U = expm(A − Aᵀ)), `dynamic` (expm, rebased every step), `dynamic-cayley`
    /// (the Cayley map as the retraction, rebased every step) or `frame` (the default recipe's
    /// frame of `20 · classes` rows at most, before pruning).
    pub name: String,
    /// The map from A to the rotation.
    pub rotation: Parametrization,
    /// `rebase_every` of the head configuration.
    pub rebase_every: usize,
    /// Mean seconds per step.
    pub seconds_per_step: f64,
    /// Seconds per epoch of `epoch_images` images.
    pub seconds_per_epoch: f64,
    /// GEMM and LU work per step (rotation of the features, exponential or solve, products), in
    /// GFLOP.
    pub gflop_per_step: f64,
    /// That work over the step's time.
    pub gflops: f64,
    /// max |UᵀU − I| of the f32 rotation after the timed steps.
    pub orthogonality_defect: f64,
    /// PyTorch seconds per step over these seconds per step, when PyTorch was timed.
    pub speedup_vs_torch: Option<f64>,
}

/// Results at one D.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DimResult {
    /// Channels.
    pub dim: usize,
    /// GFLOP/s of one D×D×D f32 GEMM of this build, measured just before.
    pub gemm_peak_gflops: f64,
    /// The static and the dynamic trivialization.
    pub variants: Vec<VariantTiming>,
    /// Seconds per step of the PyTorch reference, when timed.
    pub torch_seconds_per_step: Option<f64>,
    /// What the reference reported about itself (torch version, threads).
    pub torch_detail: Option<String>,
    /// Largest |logit difference| against the dense reference implementation (same function).
    pub max_logit_difference: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchTrainReport {
    /// What was measured.
    pub config: BenchTrainConfig,
    /// Threads the kernels used.
    pub threads: usize,
    /// Where the head's GEMMs ran (a system BLAS with its version and kernels, or the `gemm`
    /// crate).
    pub gemm_backend: String,
    /// The processor the figures were measured on.
    pub cpu: infodisent::cpu::Cpu,
    /// One entry per D.
    pub results: Vec<DimResult>,
    /// Peak resident memory of the process in bytes.
    pub peak_rss_bytes: Option<u64>,
}

/// GFLOP/s of one d×d×d GEMM (best of three, after one untimed).
fn gemm_peak(d: usize) -> f64 {
    let x: Vec<f32> = (0..d * d).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    // An untimed call first: the process's first GEMM also starts the BLAS thread and OpenBLAS's
    // pool, which once made both timed calls read 40 % of the peak.
    std::hint::black_box(matmul(d, &x, false, &x, false));
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        std::hint::black_box(matmul(d, &x, false, &x, false));
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (d as f64).powi(3) / best / 1e9
}

/// Times `steps` full training steps (after one warm-up) and counts their GEMM work.
fn time_steps(
    head: &Head,
    batch: &PixelBatch,
    labels: &[u32],
    warmup: usize,
    steps: usize,
) -> Result<(f64, f64)> {
    let mut opt = infodisent::train::optimizer(head)?;
    let mode = TrainMode {
        tau: 1.0,
        noise_seed: 0,
    };
    let mut step = || -> Result<()> {
        let logits = head.logits(batch, Some(mode))?;
        let grads = head.loss(&logits, labels, None)?.backward()?;
        opt.step(&grads, |_| Hyper {
            lr: 1e-3,
            weight_decay: 0.0,
        })?;
        head.clamp_weights(None)?;
        if head.config.rebase_every > 0 {
            head.rebase()?;
        }
        Ok(())
    };
    for _ in 0..warmup.max(1) {
        step()?;
    }
    let flops_before = gemm_flops();
    let started = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    let seconds = started.elapsed().as_secs_f64() / steps as f64;
    let gflop = (gemm_flops() - flops_before) as f64 / steps as f64 / 1e9;
    Ok((seconds, gflop))
}

/// Runs the PyTorch reference step for one D; `(seconds per step, its JSON line)`.
fn torch_step(
    python: &Path,
    cfg: &BenchTrainConfig,
    d: usize,
    threads: usize,
) -> Result<(f64, String)> {
    let mut args: Vec<String> = [
        d,
        cfg.batch,
        cfg.side * cfg.side,
        cfg.classes,
        cfg.steps.max(1),
    ]
    .map(|x| x.to_string())
    .to_vec();
    args.extend([
        cfg.a_scale.to_string(),
        threads.to_string(),
        cfg.seed.to_string(),
        cfg.warmup.max(1).to_string(),
    ]);
    let (v, line) = super::run_python_json(python, "train_torch.py", TORCH_SCRIPT, &args)?;
    let s = v["seconds_per_step"]
        .as_f64()
        .ok_or_else(|| Error::Config(format!("no seconds_per_step in `{line}`")))?;
    Ok((s, line))
}

/// Runs the benchmark.
pub fn run(cfg: &BenchTrainConfig) -> Result<BenchTrainReport> {
    let mut results = Vec::new();
    let steps = cfg.steps.max(1);
    let threads = rayon::current_num_threads();
    let steps_per_epoch = cfg.epoch_images.div_ceil(cfg.batch.max(1)) as f64;
    for &d in &cfg.dims {
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ d as u64);
        let cells = cfg.side * cfg.side;
        let n = cfg.batch.max(1);
        // Post-ReLU-like features: half zeros, half uniform on [0, 2].
        let maps: Vec<f32> = (0..n * d * cells)
            .map(|_| (rng.random::<f32>() * 2.0 - 1.0).max(0.0) * 2.0)
            .collect();
        let labels: Vec<u32> = (0..n)
            .map(|_| rng.random_range(0..cfg.classes as u32))
            .collect();
        let batch = PixelBatch::from_maps(&maps, labels.clone(), d, cells);
        drop(maps);
        let a: Vec<f32> = (0..d * d)
            .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * cfg.a_scale * 3f64.sqrt()) as f32)
            .collect();
        // The default recipe's frame before pruning: its candidates per class, at most D.
        let frame_rows = (DEFAULT_FRAME_PER_CLASS * cfg.classes).min(d);
        let head_with = |rotation: Parametrization, rebase_every: usize| -> Result<Head> {
            let head = Head::with_channels(
                HeadConfig {
                    w_init: 0.01,
                    rotation,
                    rebase_every,
                    ..HeadConfig::default()
                },
                d,
                cfg.classes,
                cfg.seed,
                (0..frame_rows as u32).collect(),
            )?;
            if rotation == Parametrization::Frame {
                return Ok(head);
            }
            head.vars()[0]
                .1
                .set(&Tensor::from_slice(&a, (d, d), &Device::Cpu)?)?;
            if rebase_every > 0 {
                // The same trained-scale rotation, now held in the base with A = 0.
                head.rebase()?;
            }
            Ok(head)
        };
        let gemm_peak_gflops = gemm_peak(d);
        let mut variants = Vec::new();
        let mut max_logit_difference = 0.0;
        for (name, rotation, rebase_every) in [
            ("static", Parametrization::Expm, 0),
            ("dynamic", Parametrization::Expm, 1),
            ("dynamic-cayley", Parametrization::Cayley, 1),
            ("frame", Parametrization::Frame, 0),
        ] {
            let head = head_with(rotation, rebase_every)?;
            if rebase_every == 0 && rotation != Parametrization::Frame {
                let vars = head.vars();
                let pixels = Tensor::from_slice(&batch.pixels, (n * cells, d), &Device::Cpu)?;
                let dense = reference::logits_dense(
                    vars[0].1.as_tensor(),
                    vars[1].1.as_tensor(),
                    vars[2].1.as_tensor(),
                    &pixels,
                    n,
                    cells,
                )?;
                max_logit_difference = f64::from(
                    (head.logits(&batch, None)? - dense)?
                        .abs()?
                        .max_all()?
                        .to_scalar::<f32>()?,
                );
            }
            let (seconds, gflop) = time_steps(&head, &batch, &labels, cfg.warmup, steps)?;
            variants.push(VariantTiming {
                name: name.to_owned(),
                rotation,
                rebase_every,
                seconds_per_step: seconds,
                seconds_per_epoch: seconds * steps_per_epoch,
                gflop_per_step: gflop,
                gflops: gflop / seconds,
                orthogonality_defect: orthogonality_defect(d, &head.rotation()?),
                speedup_vs_torch: None,
            });
        }
        let torch = match &cfg.torch_python {
            Some(py) => Some(torch_step(py, cfg, d, threads)?),
            None => None,
        };
        if let Some((t, _)) = &torch {
            for v in &mut variants {
                v.speedup_vs_torch = Some(t / v.seconds_per_step);
            }
        }
        results.push(DimResult {
            dim: d,
            gemm_peak_gflops,
            variants,
            torch_seconds_per_step: torch.as_ref().map(|t| t.0),
            torch_detail: torch.map(|t| t.1),
            max_logit_difference,
        });
    }
    Ok(BenchTrainReport {
        config: cfg.clone(),
        threads,
        gemm_backend: infodisent::head::blas::backend_name(),
        cpu: infodisent::cpu::Cpu::get().clone(),
        results,
        peak_rss_bytes: super::peak_rss_bytes(),
    })
}

/// The report as a text table.
pub fn format_report(r: &BenchTrainReport) -> String {
    let c = &r.config;
    let mut out = format!(
        "bench train: batch {} of [D, {}, {}], {} classes, A entries sd {}, {} timed steps after {} warm-up steps, {} threads, GEMM by {}; epoch = {} images\nCPU: {}\n",
        c.batch, c.side, c.side, c.classes, c.a_scale, c.steps, c.warmup.max(1), r.threads, r.gemm_backend, c.epoch_images, r.cpu.describe()
    );
    out.push_str(&format!(
        "{:>5} {:<14} {:>9} {:>10} {:>10} {:>8} {:>6} {:>10} {:>9}\n",
        "D",
        "rotation",
        "s/step",
        "s/epoch",
        "GFLOP/step",
        "GFLOP/s",
        "peak%",
        "|UᵀU−I|",
        "vs torch"
    ));
    for d in &r.results {
        for v in &d.variants {
            out.push_str(&format!(
                "{:>5} {:<14} {:>9.3} {:>10.1} {:>10.1} {:>8.1} {:>5.0}% {:>10.1e} {:>9}\n",
                d.dim,
                v.name,
                v.seconds_per_step,
                v.seconds_per_epoch,
                v.gflop_per_step,
                v.gflops,
                100.0 * v.gflops / d.gemm_peak_gflops,
                v.orthogonality_defect,
                v.speedup_vs_torch
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}x"))
            ));
        }
        out.push_str(&format!(
            "{:>5} GEMM peak {:.1} GFLOP/s; PyTorch {}; max logit difference to the dense reference {:.1e}\n",
            d.dim,
            d.gemm_peak_gflops,
            d.torch_seconds_per_step
                .map_or_else(|| "not timed (pass --torch-python)".to_owned(), |s| format!("{s:.3} s/step")),
            d.max_logit_difference
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
