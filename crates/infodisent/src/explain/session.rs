//! Explaining images end to end: a head, its cache (grid, preprocessing, class names,
//! prototypes) and an output folder; images come from the cache (no backbone run) or from
//! files (one backbone run each batch). Writes `<stem>.json` and `<stem>.png` per image.

use super::image::ImageExplainer;
use super::prototypes::{find_prototypes, Prototypes};
use super::render::{image_figure, network_view};
use super::{Grid, ImageExplanation};
use crate::cache::FeatureCache;
use crate::dataset::ImageStore;
use crate::draw::save_png;
use crate::engine::FeatureFn;
use crate::error::{Error, Result};
use crate::head::params::HeadParams;
use crate::preprocess::Preprocess;
use crate::runs::{folder_of, load_head, PROTOTYPES_FILE};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// Images per backbone run when explaining many.
const BATCH: usize = 16;

/// Everything needed to explain and draw images of one cache with one head.
pub struct ExplainSession {
    /// The cache the head was trained on.
    pub cache: FeatureCache,
    /// Computes the numbers.
    pub explainer: ImageExplainer,
    /// Prototypes of every channel.
    pub prototypes: Prototypes,
    /// The cache's preprocessing.
    pub preprocess: Preprocess,
    /// Decoded images, reused across figures.
    pub store: ImageStore,
    /// Side of one figure tile in pixels.
    pub tile: u32,
}

/// Loads prototypes from `path` when they match the head and cache, otherwise finds them in
/// the cache's `train` split (or its first split) and saves them there.
pub fn load_or_find_prototypes(
    cache: &FeatureCache,
    head: &HeadParams,
    path: &Path,
    k: usize,
) -> Result<Prototypes> {
    if path.exists() {
        let mut p = Prototypes::load(path)?;
        if p.check_matches(path, head, &cache.manifest().fingerprint)
            .is_ok()
            && p.k >= k
        {
            p.resolve_paths(cache)?;
            return Ok(p);
        }
    }
    let split = training_split(cache)?;
    let p = find_prototypes(cache, head, &split, k)?;
    p.save(path)?;
    Ok(p)
}

/// The split prototypes come from: `train` when present, else the first one.
pub fn training_split(cache: &FeatureCache) -> Result<String> {
    let splits = &cache.manifest().splits;
    if splits.contains_key("train") {
        return Ok("train".into());
    }
    splits
        .keys()
        .next()
        .cloned()
        .ok_or_else(|| Error::cache(cache.dir(), "the cache has no splits"))
}

impl ExplainSession {
    /// The same session reading images from `root`: the dataset moved since extraction.
    pub fn with_data_root(mut self, root: &Path) -> Result<Self> {
        self.cache = self.cache.with_data_root(root)?;
        self.prototypes.resolve_paths(&self.cache)?;
        Ok(self)
    }

    /// Opens a session; prototypes are read from (or saved to) `prototypes` (default
    /// `<head dir>/prototypes.json`).
    pub fn open(
        cache_dir: &Path,
        head_dir: &Path,
        probe: Option<&Path>,
        prototypes: Option<PathBuf>,
        k: usize,
    ) -> Result<Self> {
        let cache = crate::train::cache_for_head(FeatureCache::open(cache_dir)?, head_dir)?;
        let head = load_head(head_dir)?;
        let grid = Grid::from_shape(cache.feature_shape());
        let baseline = crate::baseline::choose_or_warn(&cache, probe)?.map(|b| b.classifier);
        let explainer = ImageExplainer::new(
            head,
            baseline,
            grid,
            cache.manifest().input_size,
            cache.manifest().classes.clone(),
        )?;
        let proto_path = prototypes.unwrap_or_else(|| folder_of(head_dir).join(PROTOTYPES_FILE));
        let prototypes = load_or_find_prototypes(&cache, &explainer.head, &proto_path, k)?;
        let preprocess = cache.manifest().preprocess.clone();
        Ok(ExplainSession {
            cache,
            explainer,
            prototypes,
            preprocess,
            store: ImageStore::default(),
            tile: 160,
        })
    }

    /// Explains item `index` of a cached split from its stored features.
    pub fn explain_item(
        &self,
        split: &str,
        index: usize,
        class: Option<usize>,
    ) -> Result<ImageExplanation> {
        let info = self.cache.split(split)?;
        if index >= info.num_items {
            return Err(Error::Config(format!(
                "item {index} out of range: split `{split}` has {} items",
                info.num_items
            )));
        }
        let items = self.cache.items(split)?;
        let row = self.cache.read_items(split, &[index])?;
        let mut ex = self
            .explainer
            .explain(&row.features, class, &items[index].path)?;
        ex.item = Some(index);
        ex.label = usize::try_from(row.labels[0]).ok();
        Ok(ex)
    }

    /// Explains image files: one backbone run per batch of `features` (inputs `[n, 3, S, S]`
    /// to feature maps `[n, D, h, w]`).
    pub fn explain_files(
        &self,
        paths: &[PathBuf],
        class: Option<usize>,
        features: &mut FeatureFn<'_>,
    ) -> Result<Vec<ImageExplanation>> {
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(BATCH) {
            let sources: Vec<String> = chunk.iter().map(|p| p.display().to_string()).collect();
            let images = sources
                .iter()
                .map(|s| self.store.get(s))
                .collect::<Result<Vec<_>>>()?;
            let images: Vec<&RgbImage> = images.iter().map(|i| i.as_ref()).collect();
            out.extend(self.explain_images(&images, &sources, class, features)?);
        }
        Ok(out)
    }

    /// Explains decoded images held in memory, named `sources` in the explanations: the call
    /// behind `explain` on files, the viewer's uploads and the Python package.
    pub fn explain_images(
        &self,
        images: &[&RgbImage],
        sources: &[String],
        class: Option<usize>,
        features: &mut FeatureFn<'_>,
    ) -> Result<Vec<ImageExplanation>> {
        if images.len() != sources.len() {
            return Err(Error::Config(format!(
                "{} images but {} names for them",
                images.len(),
                sources.len()
            )));
        }
        let mut out = Vec::with_capacity(images.len());
        for (chunk, names) in images.chunks(BATCH).zip(sources.chunks(BATCH)) {
            let f = self.backbone_features(chunk, features)?;
            out.extend(self.explain_features(&f, chunk.len(), class, names)?);
        }
        Ok(out)
    }

    /// The feature maps `[n, D, h, w]` of decoded images, preprocessed as the cache was and
    /// run through `features` (inputs `[n, 3, S, S]` to feature maps) once.
    pub fn backbone_features(
        &self,
        images: &[&RgbImage],
        features: &mut FeatureFn<'_>,
    ) -> Result<Vec<f32>> {
        let len = self.preprocess.input_len();
        let mut input = vec![0.0; images.len() * len];
        for (img, slot) in images.iter().zip(input.chunks_exact_mut(len)) {
            self.preprocess.apply_into(img, slot)?;
        }
        features(&input, images.len())
    }

    /// Explains feature maps `[n, D, h, w]` of images named `sources` (the explained class is
    /// each one's prediction, or `class`).
    pub fn explain_features(
        &self,
        f: &[f32],
        n: usize,
        class: Option<usize>,
        sources: &[String],
    ) -> Result<Vec<ImageExplanation>> {
        if f.len() != n * self.explainer.grid.len() {
            return Err(Error::Shape(format!(
                "backbone returned {} feature values for {n} images of {:?}",
                f.len(),
                self.explainer.grid
            )));
        }
        let classes = class.map(|c| vec![c; n]);
        self.explainer
            .explain_batch(f, n, classes.as_deref(), sources)
    }

    /// The figure of `ex` drawn over `img`, the image it explains: the image with its positive
    /// and negative maps (and CAM), then the deciding channels with their prototypes.
    pub fn figure(&self, img: &RgbImage, ex: &ImageExplanation) -> Result<RgbImage> {
        self.draw(&network_view(img, &self.preprocess)?, ex)
    }

    /// [`Self::figure`] over the image as the network saw it (resized and cropped).
    pub fn draw(&self, view: &RgbImage, ex: &ImageExplanation) -> Result<RgbImage> {
        image_figure(
            view,
            ex,
            Some(&self.prototypes),
            &self.store,
            &self.preprocess,
            self.tile,
        )
    }

    /// Draws the figure of `ex` and writes `<stem>.png` and `<stem>.json` into `dir`; records
    /// the figure's file name in `ex`.
    pub fn write(&self, ex: &mut ImageExplanation, dir: &Path, stem: &str) -> Result<()> {
        let img = self.store.get(&ex.source)?;
        let figure = self.figure(&img, ex)?;
        let name = format!("{stem}.png");
        save_png(&figure, dir.join(&name))?;
        ex.figure = Some(name);
        crate::fsutil::write_json_atomic(dir.join(format!("{stem}.json")), ex)
    }
}
