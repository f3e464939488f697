//! Extraction throughput: the full decode → preprocess → engine pipeline against the engine
//! alone on already-preprocessed batches, and the engine's GFLOP/s against a matrix-multiply
//! peak measured in the same process; with a Python that has PyTorch, the same files through
//! PyTorch eager (`python/extract_torch.py` in this crate) in the same run for the ratio.

use infodisent::classifier::average_pool;
use infodisent::dataset::Sample;
use infodisent::engine::Backbone;
use infodisent::error::{Error, Result};
use infodisent::extract::run_batches;
use infodisent::preprocess::Preprocess;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The PyTorch reference, shipped inside the binary so it runs from any folder.
const TORCH_SCRIPT: &str = include_str!("../python/extract_torch.py");

/// Which PyTorch model to time against, and with which Python.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TorchReference {
    /// A Python interpreter with PyTorch, torchvision (and timm for `timm:` models).
    pub python: PathBuf,
    /// `timm:<name>` or `torchvision:<name>`: the same architecture as the ONNX model.
    pub model: String,
}

/// What PyTorch eager reached on the same files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TorchFigures {
    /// Decoding in the main process between batches, images per second (best pass).
    pub images_per_sec_in_process: f64,
    /// A DataLoader whose workers decode while the model runs, images per second (best pass).
    pub images_per_sec_workers: f64,
    /// `end_to_end / max(in_process, workers)`.
    pub speedup: f64,
    /// The better loader under `torch.autocast(bfloat16)`, images per second (best pass), when
    /// engines are compared.
    #[serde(default)]
    pub images_per_sec_bf16_autocast: Option<f64>,
    /// The reference's own JSON line (torch version, threads, workers).
    pub detail: String,
}

/// What to measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractBenchOptions {
    /// Images per engine call.
    pub batch: usize,
    /// Decode/preprocess threads of the pipeline (0: one per core).
    pub decode_threads: usize,
    /// Timed passes of each mode; the best is reported.
    pub repeats: usize,
    /// Side of the square matrices of the GEMM peak.
    pub gemm_size: usize,
    /// Time PyTorch eager on the same files too.
    pub torch: Option<TorchReference>,
    /// Run the engine in int8, calibrated on this many of the images (the rest measure the
    /// error against f32).
    pub int8_calibration: Option<usize>,
    /// Also time every available engine at every precision it runs (ONNX Runtime f32,
    /// OpenVINO f32 and bf16) against ONNX Runtime f32, in this run.
    #[serde(default)]
    pub engines: bool,
}

impl Default for ExtractBenchOptions {
    fn default() -> Self {
        ExtractBenchOptions {
            batch: 32,
            decode_threads: 0,
            repeats: 2,
            gemm_size: 1024,
            torch: None,
            int8_calibration: None,
            engines: false,
        }
    }
}

/// The measured figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractBench {
    /// Model name.
    pub model: String,
    /// Images per pass.
    pub images: usize,
    /// Images per engine call.
    pub batch: usize,
    /// Network input side.
    pub input_size: usize,
    /// Decode threads used by the pipeline.
    pub decode_threads: usize,
    /// Decode + preprocess + engine, images per second (best pass).
    pub end_to_end_images_per_sec: f64,
    /// Engine alone on preprocessed batches, images per second (best pass).
    pub engine_images_per_sec: f64,
    /// `end_to_end / engine`: how much of the engine's speed the pipeline keeps.
    pub ratio: f64,
    /// Forward GFLOPs per image, from the ONNX graph.
    pub gflop_per_image: f64,
    /// Engine GFLOP/s (best engine-only pass).
    pub engine_gflop_per_sec: f64,
    /// f32 GEMM GFLOP/s measured now (candle matmul, best of 5).
    pub gemm_gflop_per_sec: f64,
    /// `engine / gemm` GFLOP/s.
    pub fraction_of_gemm_peak: f64,
    /// Peak resident memory of the process, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// The processor the figures were measured on.
    pub cpu: infodisent::cpu::Cpu,
    /// PyTorch eager on the same files, when asked for.
    pub torch: Option<TorchFigures>,
    /// The int8 engine against f32, when asked for.
    pub int8: Option<Int8Figures>,
    /// Every engine and precision, when asked for.
    #[serde(default)]
    pub engines: Vec<EngineFigures>,
}

/// One engine at one precision, timed on the same images as the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineFigures {
    /// The engine.
    pub engine: infodisent::engine::Engine,
    /// Its arithmetic.
    pub precision: infodisent::engine::Precision,
    /// Why it did not run, when it did not (the other fields are then 0).
    pub unavailable: Option<String>,
    /// Engine alone on preprocessed batches, images per second (best pass).
    pub engine_images_per_sec: f64,
    /// Decode + preprocess + engine, images per second (best pass).
    pub end_to_end_images_per_sec: f64,
    /// `‖f − f_ref‖ / ‖f_ref‖` of the feature maps against ONNX Runtime f32.
    pub feature_relative_error: f64,
    /// The same for the logits, when the model has them.
    pub logits_relative_error: Option<f64>,
}

/// Times `backbone` (`samples` in `batches`) engine-only and end to end: the best of `repeats`.
fn time_both(
    backbone: &mut Backbone,
    samples: &[Sample],
    batches: &[Vec<f32>],
    ranges: &[Range<usize>],
    preprocess: &Preprocess,
    opts: &ExtractBenchOptions,
) -> Result<(f64, f64)> {
    // Warm-up: the first run pays for memory planning and page faults.
    backbone.run(&batches[0], ranges[0].len())?;
    let (mut engine_best, mut e2e_best) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..opts.repeats.max(1) {
        let t = Instant::now();
        for (x, r) in batches.iter().zip(ranges) {
            backbone.run(x, r.len())?;
        }
        engine_best = engine_best.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        run_batches(
            backbone,
            samples,
            ranges,
            preprocess,
            opts.decode_threads,
            false,
            |_, _| Ok(()),
        )?;
        e2e_best = e2e_best.min(t.elapsed().as_secs_f64());
    }
    let n = samples.len() as f64;
    Ok((n / engine_best, n / e2e_best))
}

/// `reference` (the loaded backbone, ONNX Runtime f32 from the CLI), OpenVINO f32 and
/// OpenVINO bf16 on the same images, each against the first.
fn engine_rows(
    reference: &mut Backbone,
    samples: &[Sample],
    batches: &[Vec<f32>],
    ranges: &[Range<usize>],
    preprocess: &Preprocess,
    opts: &ExtractBenchOptions,
) -> Result<Vec<EngineFigures>> {
    use infodisent::engine::{Engine, Precision};
    let (_, ref_features, ref_logits) = run_all(reference, batches, ranges)?;
    let figures =
        |backbone: &mut Backbone, features: &[f32], logits: &[f32]| -> Result<EngineFigures> {
            let (engine, precision) = backbone.engine();
            let (engine_ips, e2e_ips) =
                time_both(backbone, samples, batches, ranges, preprocess, opts)?;
            Ok(EngineFigures {
                engine,
                precision,
                unavailable: None,
                engine_images_per_sec: engine_ips,
                end_to_end_images_per_sec: e2e_ips,
                feature_relative_error: relative_error(features, &ref_features),
                logits_relative_error: (!logits.is_empty())
                    .then(|| relative_error(logits, &ref_logits)),
            })
        };
    let mut rows = vec![figures(reference, &ref_features, &ref_logits)?];
    for (engine, precision) in [
        (Engine::Openvino, Precision::F32),
        (Engine::Openvino, Precision::Bf16),
    ] {
        let row = match reference.another(engine, precision) {
            Ok(mut backbone) => {
                let (_, features, logits) = run_all(&mut backbone, batches, ranges)?;
                figures(&mut backbone, &features, &logits)?
            }
            Err(e) => EngineFigures {
                engine,
                precision,
                unavailable: Some(e.to_string()),
                engine_images_per_sec: 0.0,
                end_to_end_images_per_sec: 0.0,
                feature_relative_error: 0.0,
                logits_relative_error: None,
            },
        };
        rows.push(row);
    }
    Ok(rows)
}

/// How the int8 engine compares with f32 on the same images.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Int8Figures {
    /// Images the activation ranges were calibrated on (the first ones).
    pub calibration_images: usize,
    /// Images the errors are measured on (the others; all of them if none are left).
    pub compared_images: usize,
    /// Layers running on integer kernels.
    pub int8_layers: usize,
    /// The f32 engine alone, images per second (best pass).
    pub f32_engine_images_per_sec: f64,
    /// `‖f_int8 − f_f32‖ / ‖f_f32‖` over the compared feature maps.
    pub feature_relative_error: f64,
    /// The same for the average-pooled features (what a linear head reads).
    pub pooled_relative_error: f64,
    /// Share of compared images whose original top-1 class is unchanged, when the model has
    /// logits.
    pub top1_agreement: Option<f64>,
}

/// `‖a − b‖ / ‖b‖`.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    let (num, den) = a.iter().zip(b).fold((0.0f64, 0.0f64), |(n, d), (&x, &y)| {
        let e = f64::from(x - y);
        (n + e * e, d + f64::from(y) * f64::from(y))
    });
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

fn argmaxes(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks(classes)
        .map(infodisent::head::params::argmax)
        .collect()
}

/// Runs every batch once; `(seconds, features, logits)`.
fn run_all(
    backbone: &mut Backbone,
    batches: &[Vec<f32>],
    ranges: &[Range<usize>],
) -> Result<(f64, Vec<f32>, Vec<f32>)> {
    let (mut features, mut logits) = (Vec::new(), Vec::new());
    let t = Instant::now();
    for (x, r) in batches.iter().zip(ranges) {
        let out = backbone.run(x, r.len())?;
        features.extend(out.features);
        logits.extend(out.logits.unwrap_or_default());
    }
    Ok((t.elapsed().as_secs_f64(), features, logits))
}

/// Quantizes `backbone` on the first `calibration` images and compares it with f32.
fn int8_engine(
    f32_engine: &mut Backbone,
    batches: &[Vec<f32>],
    ranges: &[Range<usize>],
    calibration: usize,
    repeats: usize,
) -> Result<(Backbone, Int8Figures)> {
    let n = ranges.last().map_or(0, |r| r.end);
    let calibration = calibration.clamp(1, n);
    run_all(f32_engine, &batches[..1], &ranges[..1])?;
    let mut best = f64::INFINITY;
    let (mut reference, mut reference_logits) = (Vec::new(), Vec::new());
    for _ in 0..repeats.max(1) {
        let (seconds, f, l) = run_all(f32_engine, batches, ranges)?;
        best = best.min(seconds);
        (reference, reference_logits) = (f, l);
    }
    let calib: Vec<f32> = batches.concat();
    let per_image = calib.len() / n;
    let mut quantized = f32_engine.to_int8(&calib[..calibration * per_image], calibration)?;
    let (_, features, logits) = run_all(&mut quantized, batches, ranges)?;
    let first = if calibration < n { calibration } else { 0 };
    let [d, h, w] = quantized.model().feature_shape;
    let map = d * h * w;
    let (ours, theirs) = (&features[first * map..], &reference[first * map..]);
    let top1_agreement = quantized.model().original_classes.and_then(|c| {
        (logits.len() == n * c && reference_logits.len() == n * c).then(|| {
            let (a, b) = (
                argmaxes(&logits[first * c..], c),
                argmaxes(&reference_logits[first * c..], c),
            );
            a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
        })
    });
    let figures = Int8Figures {
        calibration_images: calibration,
        compared_images: n - first,
        int8_layers: quantized.int8_layers().unwrap_or(0),
        f32_engine_images_per_sec: n as f64 / best,
        feature_relative_error: relative_error(ours, theirs),
        pooled_relative_error: relative_error(
            &average_pool(ours, h * w),
            &average_pool(theirs, h * w),
        ),
        top1_agreement,
    };
    Ok((quantized, figures))
}

/// Best GFLOP/s of an `n × n × n` f32 matrix product over five runs.
pub fn gemm_peak_gflops(n: usize) -> Result<f64> {
    use candle_core::{Device, Tensor};
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    a.matmul(&b)?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        best = best.min(t.elapsed().as_secs_f64());
        drop(c);
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}

/// Measures `samples` through `backbone` both ways.
pub fn bench_extract(
    backbone: &mut Backbone,
    samples: &[Sample],
    preprocess: &Preprocess,
    opts: &ExtractBenchOptions,
) -> Result<ExtractBench> {
    if samples.is_empty() || opts.batch == 0 {
        return Err(Error::Config(
            "the benchmark needs at least one image and a positive batch".into(),
        ));
    }
    let ranges: Vec<Range<usize>> = (0..samples.len())
        .step_by(opts.batch)
        .map(|s| s..(s + opts.batch).min(samples.len()))
        .collect();
    let len = preprocess.input_len();
    let batches: Vec<Vec<f32>> = ranges
        .iter()
        .map(|r| {
            let mut x = vec![0.0; r.len() * len];
            for (s, out) in samples[r.clone()].iter().zip(x.chunks_mut(len)) {
                preprocess.apply_into(&s.load()?, out)?;
            }
            Ok(x)
        })
        .collect::<Result<_>>()?;
    let gflop_per_image = infodisent::onnx::count_flops(backbone.model(), 1)? / 1e9;
    let (mut quantized, int8) = match opts.int8_calibration {
        Some(k) => {
            let (q, figures) = int8_engine(backbone, &batches, &ranges, k, opts.repeats)?;
            (Some(q), Some(figures))
        }
        None => (None, None),
    };
    let engines = match opts.engines {
        true => engine_rows(backbone, samples, &batches, &ranges, preprocess, opts)?,
        false => vec![],
    };
    // With engines compared, the first row already timed the float backbone.
    let (engine_ips, e2e_ips) = match (engines.first(), &quantized) {
        (Some(row), None) => (row.engine_images_per_sec, row.end_to_end_images_per_sec),
        _ => {
            let timed = quantized.as_mut().unwrap_or(&mut *backbone);
            time_both(timed, samples, &batches, &ranges, preprocess, opts)?
        }
    };
    let backbone = quantized.as_mut().unwrap_or(backbone);
    let model = backbone.model();
    let gemm = gemm_peak_gflops(opts.gemm_size)?;
    let torch = match &opts.torch {
        Some(t) => Some(torch_figures(t, samples, opts, e2e_ips)?),
        None => None,
    };
    Ok(ExtractBench {
        model: model.name.clone(),
        images: samples.len(),
        batch: opts.batch,
        input_size: preprocess.input_size(),
        decode_threads: infodisent::extract::decode_threads(opts.decode_threads),
        end_to_end_images_per_sec: e2e_ips,
        engine_images_per_sec: engine_ips,
        ratio: e2e_ips / engine_ips,
        gflop_per_image,
        engine_gflop_per_sec: engine_ips * gflop_per_image,
        gemm_gflop_per_sec: gemm,
        fraction_of_gemm_peak: engine_ips * gflop_per_image / gemm,
        peak_rss_bytes: super::peak_rss_bytes(),
        cpu: infodisent::cpu::Cpu::get().clone(),
        torch,
        int8,
        engines,
    })
}

/// Times the PyTorch reference on the files of `samples` with this process's thread count.
fn torch_figures(
    reference: &TorchReference,
    samples: &[Sample],
    opts: &ExtractBenchOptions,
    ours: f64,
) -> Result<TorchFigures> {
    let paths: Vec<String> = samples
        .iter()
        .map(|s| {
            s.file_path()
                .map(|p| p.display().to_string())
                .ok_or_else(|| {
                    Error::Config(
                        "the PyTorch reference reads image files: choose a folder dataset".into(),
                    )
                })
        })
        .collect::<Result<_>>()?;
    let listing = std::env::temp_dir().join(format!("infodisent-files-{}.txt", std::process::id()));
    std::fs::write(&listing, paths.join("\n")).map_err(|e| Error::io(&listing, e))?;
    let args = [
        reference.model.clone(),
        listing.display().to_string(),
        opts.batch.to_string(),
        rayon::current_num_threads().to_string(),
        opts.repeats.max(1).to_string(),
        u8::from(opts.engines).to_string(),
    ];
    let result = super::run_python_json(&reference.python, "extract_torch.py", TORCH_SCRIPT, &args);
    let _ = std::fs::remove_file(&listing);
    let (v, line) = result?;
    let figure = |key: &str| {
        v[key]
            .as_f64()
            .ok_or_else(|| Error::Config(format!("no {key} in `{line}`")))
    };
    let (in_process, workers) = (
        figure("images_per_sec_in_process")?,
        figure("images_per_sec_workers")?,
    );
    Ok(TorchFigures {
        images_per_sec_in_process: in_process,
        images_per_sec_workers: workers,
        speedup: ours / in_process.max(workers),
        images_per_sec_bf16_autocast: v["images_per_sec_bf16_autocast"].as_f64(),
        detail: line,
    })
}

/// Writes `n` JPEG photos into `dir` (quality 90, 500 × 375, crops of the asset photos at
/// random places and scales), unless the folder already holds exactly those files: the
/// benchmark's stand-in for a folder of camera images. Deterministic for `n` and `seed`.
pub fn write_photo_jpegs(dir: &Path, n: usize, seed: u64) -> Result<Vec<PathBuf>> {
    use rand::{Rng, SeedableRng};
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| dir.join(format!("photo-{seed}-{i:04}.jpg")))
        .collect();
    if paths.iter().all(|p| p.is_file()) {
        return Ok(paths);
    }
    let photos = infodisent::synth::parts::asset_backgrounds()?
        .iter()
        .map(infodisent::imageio::load_rgb)
        .collect::<Result<Vec<_>>>()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for path in &paths {
        let photo = &photos[rng.random_range(0..photos.len())];
        let (w, h) = (photo.width() as f64, photo.height() as f64);
        let scale = rng.random_range(0.6..=1.0) * (w / 4.0).min(h / 3.0);
        let (cw, ch) = (4.0 * scale, 3.0 * scale);
        let left = rng.random_range(0.0..=w - cw);
        let top = rng.random_range(0.0..=h - ch);
        let img = infodisent::imageio::resize_rgb(photo, 500, 375, Some((left, top, cw, ch)))?;
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&img)
            .map_err(|e| Error::input(path, e.to_string()))?;
        infodisent::fsutil::write_atomic(path, &bytes)?;
    }
    Ok(paths)
}
