//! What the viewer serves from: one cache, its backbone loaded once, and each head with its
//! prototypes, class summaries and test-split predictions computed once at start. Only an
//! uploaded image is computed live; the last few uploads are kept (bounded) so their figures
//! can be drawn when the page asks for them.

use crate::cache::FeatureCache;
use crate::engine::Backbone;
use crate::error::{Error, Result};
use crate::explain::class::explain_split;
use crate::explain::render::network_view;
use crate::explain::session::ExplainSession;
use crate::explain::{ClassExplanation, ImageExplanation};
use image::RgbImage;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Uploads whose explanations and network views are kept for their figures: a page fetches an
/// upload's figure right after its explanation, and a 224-px view is 150 KB, so 10 MB at most.
pub const KEPT_UPLOADS: usize = 64;

/// Channels listed per class.
const CLASS_CHANNELS: usize = 5;

/// What opens a viewer: the cache, the heads, and where the rest lives.
#[derive(Debug, Clone, Default)]
pub struct ViewerSources {
    /// The feature cache every head was trained on.
    pub cache: PathBuf,
    /// InfoDisent training folders (or head files), shown side by side.
    pub heads: Vec<PathBuf>,
    /// Linear-probe folder for CAM, when the cache has no original classifier.
    pub probe: Option<PathBuf>,
    /// The model that made the cache, when it moved since `extract`.
    pub model: Option<String>,
    /// The dataset's folder, when it moved since `extract`.
    pub data_root: Option<PathBuf>,
    /// Threads the backbone may use.
    pub threads: usize,
}

/// One head as the viewer shows it.
pub struct HeadView {
    /// A short name: the run folder's name.
    pub name: String,
    /// The head, its cache, prototypes and image store.
    pub session: ExplainSession,
    /// The split shown: test, else validation, else the only one.
    pub split: String,
    /// Every class summarised on `split`.
    pub classes: Vec<ClassExplanation>,
    /// The head's prediction for each item of `split`.
    pub predictions: Vec<usize>,
    /// Each item's label in `split`.
    pub labels: Vec<i64>,
    /// Each item's image path in `split`.
    pub paths: Vec<String>,
    /// The |correlation| picture of its deciding channels on `split`, rotated and raw (SVG).
    pub correlation: String,
}

impl HeadView {
    /// Accuracy on `split`.
    pub fn accuracy(&self) -> f64 {
        let right = self
            .predictions
            .iter()
            .zip(&self.labels)
            .filter(|(&p, &l)| i64::try_from(p).ok() == Some(l))
            .count();
        right as f64 / self.predictions.len().max(1) as f64
    }

    /// The classes using channel `k` (positive weight), heaviest first.
    pub fn users_of(&self, k: usize) -> Vec<(usize, f32)> {
        let head = &self.session.explainer.head;
        let mut users: Vec<(usize, f32)> = (0..head.classes)
            .map(|c| (c, head.weight[c * head.dim + k]))
            .filter(|&(_, w)| w > 0.0)
            .collect();
        users.sort_by(|a, b| b.1.total_cmp(&a.1));
        users
    }

    /// The items of `split` labelled `c`: those the head classifies right, then those it gets
    /// wrong, each in item order.
    pub fn items_of(&self, c: usize) -> (Vec<usize>, Vec<usize>) {
        (0..self.labels.len())
            .filter(|&i| usize::try_from(self.labels[i]).ok() == Some(c))
            .partition(|&i| self.predictions[i] == c)
    }

    /// The explanation of item `i` of the shown split, from its cached features.
    pub fn explain_item(&self, i: usize) -> Result<ImageExplanation> {
        self.session.explain_item(&self.split, i, None)
    }
}

/// One uploaded image: its network view and a head's explanation of it.
pub struct Upload {
    /// The image as the network saw it (resized and cropped).
    pub view: RgbImage,
    /// The head that explained it.
    pub head: usize,
    /// Its explanation.
    pub explanation: ImageExplanation,
}

/// Everything the server reads; shared by every request.
pub struct Viewer {
    /// The heads, in the order given.
    pub heads: Vec<HeadView>,
    /// The backbone that made the cache, or why it could not be loaded (uploads then fail).
    pub backbone: std::result::Result<Mutex<Backbone>, String>,
    uploads: Mutex<(u64, LruCache<u64, Arc<Upload>>)>,
}

impl Viewer {
    /// Loads the backbone and every head, finds or reads each head's prototypes and summarises
    /// its classes and test predictions.
    pub fn open(src: &ViewerSources) -> Result<Viewer> {
        if src.heads.is_empty() {
            return Err(Error::Config("give at least one --head".into()));
        }
        let mut heads = Vec::with_capacity(src.heads.len());
        for dir in &src.heads {
            heads.push(open_head(src, dir)?);
        }
        let cache = &heads[0].session.cache;
        let backbone = crate::backbone::from_cache(cache, src.model.as_deref(), src.threads)
            .map(Mutex::new)
            .map_err(|e| {
                tracing::warn!("uploads are off: {e}");
                e.to_string()
            });
        Ok(Viewer {
            heads,
            backbone,
            uploads: Mutex::new((0, LruCache::new(NonZeroUsize::new(KEPT_UPLOADS).unwrap()))),
        })
    }

    /// The cache every head reads.
    pub fn cache(&self) -> &FeatureCache {
        &self.heads[0].session.cache
    }

    /// The class names.
    pub fn class_names(&self) -> &[String] {
        &self.cache().manifest().classes
    }

    /// Explains a decoded image with head `h` (one backbone run) and keeps it for its
    /// figure; returns its id. `class` explains that class instead of the prediction.
    pub fn explain_upload(
        &self,
        h: usize,
        image: &RgbImage,
        name: &str,
        class: Option<usize>,
    ) -> Result<(u64, Arc<Upload>)> {
        let backbone = self
            .backbone
            .as_ref()
            .map_err(|why| Error::Config(format!("the viewer cannot run the backbone: {why}")))?;
        let session = &self.heads[h].session;
        let mut run = |input: &[f32], n: usize| {
            let mut engine = backbone.lock().unwrap_or_else(|p| p.into_inner());
            Ok(engine.run(input, n)?.features)
        };
        let explanation = session
            .explain_images(&[image], &[name.to_owned()], class, &mut run)?
            .remove(0);
        let upload = Arc::new(Upload {
            view: network_view(image, &session.preprocess)?,
            head: h,
            explanation,
        });
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        uploads.0 += 1;
        let id = uploads.0;
        uploads.1.put(id, Arc::clone(&upload));
        Ok((id, upload))
    }

    /// A kept upload, while it is among the last [`KEPT_UPLOADS`].
    pub fn upload(&self, id: u64) -> Option<Arc<Upload>> {
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        uploads.1.get(&id).cloned()
    }
}

fn open_head(src: &ViewerSources, dir: &Path) -> Result<HeadView> {
    let mut session = ExplainSession::open(&src.cache, dir, src.probe.as_deref(), None, 5)?;
    if let Some(root) = &src.data_root {
        session = session.with_data_root(root)?;
    }
    let split = session.cache.evaluation_split()?;
    let (classes, predictions) = explain_split(
        &session.cache,
        &session.explainer,
        &split,
        None,
        CLASS_CHANNELS,
    )?;
    let items = session.cache.items(&split)?;
    let (labels, paths) = items.into_iter().map(|i| (i.label, i.path)).unzip();
    let correlation =
        crate::report::plots::correlation_svg(&crate::metrics::correlation::channel_correlation(
            &session.cache,
            &split,
            &session.explainer.head,
        )?)?;
    let run = crate::runs::folder_of(dir);
    let name = run.file_name().map_or_else(
        || run.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(HeadView {
        name,
        session,
        split,
        classes,
        predictions,
        labels,
        paths,
        correlation,
    })
}
