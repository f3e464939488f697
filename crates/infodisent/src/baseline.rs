//! Which linear classifier a head is compared with, by one rule everywhere (CAM, the channel
//! counts, the report, the viewer, the MI decomposition): the linear probe the user names, else
//! the model's own classifier when it decides between the dataset's classes.

use crate::cache::FeatureCache;
use crate::classifier::LinearClassifier;
use crate::error::{Error, Result};
use crate::onnx::model::OriginalHeadKind;
use std::path::Path;

/// A baseline and what it is.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// `linear probe` or `original classifier`.
    pub name: &'static str,
    /// Where it came from: the probe's file, or `original`.
    pub source: String,
    /// The layer.
    pub classifier: LinearClassifier,
}

/// The baseline of heads on `cache`: the probe in `probe` (its folder or file) when given, else
/// the original classifier when it has the dataset's classes; `Err(why)` when there is none. A
/// probe of another shape than the cache's features and classes is an error.
pub fn choose(
    cache: &FeatureCache,
    probe: Option<&Path>,
) -> Result<std::result::Result<Baseline, String>> {
    let classes = cache.num_classes();
    let dim = cache.feature_shape()[0];
    if let Some(p) = probe {
        let file = crate::runs::file_in(p, crate::runs::PROBE_FILE);
        let classifier = crate::runs::load_probe(&file)?;
        if classifier.dim != dim || classifier.classes != classes {
            return Err(Error::Shape(format!(
                "linear probe {} is [{}, {}] but the cache has {classes} classes of {dim}-channel features",
                file.display(),
                classifier.classes,
                classifier.dim
            )));
        }
        return Ok(Ok(Baseline {
            name: "linear probe",
            source: file.display().to_string(),
            classifier,
        }));
    }
    let manifest = cache.manifest();
    if let Some(classifier) = cache
        .classifier()?
        .filter(|c| c.classes == classes && c.dim == dim)
    {
        return Ok(Ok(Baseline {
            name: "original classifier",
            source: "original".to_owned(),
            classifier,
        }));
    }
    Ok(Err(
        match (&manifest.original_head, manifest.original_classes) {
            (Some(head), _)
                if head.kind == OriginalHeadKind::Other
                    || head.kind == OriginalHeadKind::Missing =>
            {
                head.detail.clone()
            }
            (_, Some(c)) if c != classes => {
                format!("the original classifier has {c} classes, the dataset {classes}")
            }
            _ => "the cache holds no original classifier".to_owned(),
        },
    ))
}

/// [`choose`], with a warning saying why there is no baseline when there is none.
pub fn choose_or_warn(cache: &FeatureCache, probe: Option<&Path>) -> Result<Option<Baseline>> {
    Ok(choose(cache, probe)?
        .inspect_err(|why| {
            tracing::warn!("no CAM baseline: {why}; pass --probe DIR (a linear probe) for one")
        })
        .ok())
}
