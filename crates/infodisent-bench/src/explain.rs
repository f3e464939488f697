//! How fast explanations are: one image from its features (rotation, pooling, contributions,
//! heatmaps), explanations for a whole test set in batches, and figure rendering.

use image::{Rgb, RgbImage};
use infodisent::dataset::ImageStore;
use infodisent::draw::save_png;
use infodisent::error::{Error, Result};
use infodisent::explain::render::image_figure;
use infodisent::explain::{ChannelPrototypes, Grid, ImageExplainer, Prototype, Prototypes};
use infodisent::head::params::HeadParams;
use infodisent::preprocess::Preprocess;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Figures of one benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainBench {
    /// Channels D.
    pub dim: usize,
    /// Classes C.
    pub classes: usize,
    /// Feature grid `[h, w]`.
    pub grid: [usize; 2],
    /// Milliseconds to explain one image from its features (median of the repeats).
    pub single_ms: f64,
    /// Images explained in batches.
    pub images: usize,
    /// Seconds to explain them in batches of 256, without rendering.
    pub batch_seconds: f64,
    /// Figures rendered (with prototype crops) and written as PNG.
    pub rendered: usize,
    /// Wall-clock milliseconds per rendered figure, drawn in parallel on every thread.
    pub render_ms: f64,
    /// `batch_seconds` plus `images` figures at `render_ms` each.
    pub estimated_seconds_with_figures: f64,
}

/// What to time.
#[derive(Debug, Clone)]
pub struct ExplainBenchOptions {
    /// Repeats of the single-image explanation.
    pub repeats: usize,
    /// Images of the batched run.
    pub images: usize,
    /// Figures to render.
    pub render: usize,
}

/// A random head with the given shape: any matrix costs the rotation the same as an
/// orthogonal one; sparse nonnegative weights.
pub fn synthetic_head(dim: usize, classes: usize, seed: u64) -> Result<HeadParams> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let scale = 1.0 / (dim as f32).sqrt();
    let rotation = (0..dim * dim)
        .map(|_| rng.random_range(-scale..scale))
        .collect();
    let weight = (0..classes * dim)
        .map(|_| {
            if rng.random::<f32>() < 0.1 {
                rng.random::<f32>()
            } else {
                0.0
            }
        })
        .collect();
    HeadParams::new(dim, classes, rotation, weight, vec![0.0; classes])
}

/// Post-ReLU-like random features `[n, D, h, w]`.
pub fn synthetic_features(grid: Grid, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n * grid.len())
        .map(|_| rng.random_range(-1.0f32..3.0).max(0.0))
        .collect()
}

/// Times `explainer` on `features` (`[n, D, h, w]`, cycled to reach `opts.images`), and
/// rendering with `prototypes` drawn from `store` onto `view`, writing figures to `out_dir`.
#[allow(clippy::too_many_arguments)]
pub fn time_explanations(
    explainer: &ImageExplainer,
    features: &[f32],
    n: usize,
    prototypes: Option<&Prototypes>,
    store: &ImageStore,
    pre: &Preprocess,
    view: &RgbImage,
    out_dir: &std::path::Path,
    opts: &ExplainBenchOptions,
) -> Result<ExplainBench> {
    let len = explainer.grid.len();
    if n == 0 || features.len() != n * len {
        return Err(Error::Shape(format!(
            "benchmark needs [n, D, h, w] features, got {} values for {n} images",
            features.len()
        )));
    }
    let mut times = Vec::with_capacity(opts.repeats.max(1));
    for r in 0..opts.repeats.max(1) {
        let f = &features[(r % n) * len..(r % n + 1) * len];
        let t = Instant::now();
        std::hint::black_box(explainer.explain(f, None, "")?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let single_ms = times[times.len() / 2];
    let chunk = 256;
    let batch: Vec<f32> = (0..chunk)
        .flat_map(|i| features[(i % n) * len..(i % n + 1) * len].iter().copied())
        .collect();
    let t = Instant::now();
    let mut done = 0;
    let mut last = Vec::new();
    while done < opts.images {
        let m = chunk.min(opts.images - done);
        last = explainer.explain_batch(&batch[..m * len], m, None, &[])?;
        done += m;
    }
    let batch_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    // In parallel, as the report draws them.
    (0..opts.render).into_par_iter().try_for_each(|i| {
        let fig = image_figure(view, &last[i % last.len()], prototypes, store, pre, 160)?;
        save_png(&fig, out_dir.join(format!("bench_{i:04}.png")))
    })?;
    let render_ms = if opts.render == 0 {
        0.0
    } else {
        t.elapsed().as_secs_f64() * 1e3 / opts.render as f64
    };
    Ok(ExplainBench {
        dim: explainer.grid.dim,
        classes: explainer.head.classes,
        grid: [explainer.grid.h, explainer.grid.w],
        single_ms,
        images: opts.images,
        batch_seconds,
        rendered: opts.render,
        render_ms,
        estimated_seconds_with_figures: batch_seconds + render_ms * opts.images as f64 / 1e3,
    })
}

/// The benchmark on a random head and random features of the given shape, with prototypes
/// pointing at generated pictures in `scratch`.
pub fn synthetic(
    dim: usize,
    side: usize,
    classes: usize,
    scratch: &std::path::Path,
    opts: &ExplainBenchOptions,
) -> Result<ExplainBench> {
    let grid = Grid {
        dim,
        h: side,
        w: side,
    };
    let head = synthetic_head(dim, classes, 1)?;
    let input_size = 32 * side;
    let explainer = ImageExplainer::new(head, None, grid, input_size, vec![])?;
    let features = synthetic_features(grid, 16, 2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut paths = Vec::new();
    for i in 0..8 {
        let img = RgbImage::from_fn(input_size as u32, input_size as u32, |_, _| {
            Rgb([rng.random(), rng.random(), rng.random()])
        });
        let path = scratch.join(format!("picture_{i}.png"));
        save_png(&img, &path)?;
        paths.push(path.display().to_string());
    }
    let proto = |i: usize| Prototype {
        item: i,
        path: paths[i % paths.len()].clone(),
        label: 0,
        score: 1.0,
        cell: [0, 0],
        input_box: grid.cell_box(i % grid.cells(), input_size),
    };
    let prototypes = Prototypes {
        split: "train".into(),
        k: 5,
        grid,
        input_size,
        cache_fingerprint: String::new(),
        head_digest: String::new(),
        channels: (0..dim)
            .map(|channel| ChannelPrototypes {
                channel,
                positive: (0..5).map(|i| proto(channel + i)).collect(),
                negative: (0..5).map(|i| proto(channel + i + 3)).collect(),
            })
            .collect(),
    };
    let view = RgbImage::from_pixel(input_size as u32, input_size as u32, Rgb([200, 200, 200]));
    let pre = Preprocess::efficientnet_lite(input_size);
    time_explanations(
        &explainer,
        &features,
        16,
        Some(&prototypes),
        &ImageStore::default(),
        &pre,
        &view,
        scratch,
        opts,
    )
}
