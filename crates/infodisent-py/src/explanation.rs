//! `Explanation`: one image's decision split into channel contributions, with its heatmaps,
//! the deciding channels' prototypes and the figure `explain` draws.

use crate::errors::{invalid, OrRaise};
use image::RgbImage;
use infodisent::explain::session::ExplainSession;
use infodisent::explain::{ImageExplanation, ImageGeometry};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::Arc;

/// What an explanation is drawn over.
pub enum Picture {
    /// The image as the caller gave it (the network saw it resized and cropped).
    Image(RgbImage),
    /// The network input itself, for a batch the caller preprocessed.
    View(RgbImage),
}

/// Why the head decided what it did on one image.
#[pyclass(module = "infodisent", frozen)]
pub struct Explanation {
    inner: ImageExplanation,
    session: Arc<ExplainSession>,
    picture: Picture,
}

impl Explanation {
    pub fn new(inner: ImageExplanation, session: Arc<ExplainSession>, picture: Picture) -> Self {
        Explanation {
            inner,
            session,
            picture,
        }
    }

    fn draw(&self) -> infodisent::Result<RgbImage> {
        match &self.picture {
            Picture::Image(img) => self.session.figure(img, &self.inner),
            Picture::View(view) => self.session.draw(view, &self.inner),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.inner).unwrap_or_default()
    }
}

/// A JSON value as the Python object `json.loads` would give.
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    value: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .getattr("loads")?
        .call1((value.to_string(),))
}

#[pymethods]
impl Explanation {
    /// Where the image came from: its path, or `<array i>`.
    #[getter]
    fn source(&self) -> &str {
        &self.inner.source
    }

    /// The class with the highest logit.
    #[getter]
    fn predicted(&self) -> usize {
        self.inner.predicted
    }

    /// The class explained (the prediction unless another was asked for).
    #[getter(class_)]
    fn class_index(&self) -> usize {
        self.inner.class
    }

    /// The explained class's name.
    #[getter]
    fn class_name(&self) -> Option<String> {
        self.inner.class_name.clone()
    }

    /// Its softmax probability.
    #[getter]
    fn probability(&self) -> f32 {
        self.inner.probability
    }

    /// Every class's logit, `float32 [C]`.
    #[getter]
    fn logits<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.inner.logits.clone().into_pyarray(py)
    }

    /// The channels deciding it, strongest evidence for first, then against: dicts with
    /// `channel`, `contribution`, `sign` (+1 or −1), `share`, `weight`, `value`, `cell` and
    /// `input_box`, as `explain --json` writes them.
    #[getter]
    fn contributions<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let v = self.json();
        let mut out = Vec::new();
        for (side, sign) in [("positive", 1), ("negative", -1)] {
            for c in v[side].as_array().into_iter().flatten() {
                let d = to_python(py, c)?;
                d.cast::<PyDict>()?.set_item("sign", sign)?;
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The heatmap `kind` (`positive`, `negative`, or a method such as `cam`), `float32
    /// [H, W]`: at the image's size (`size="image"`), on the network input (`"input"`), or on
    /// the feature grid the JSON holds (`"grid"`).
    #[pyo3(signature = (kind="positive", size="image"))]
    fn heatmap<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        size: &str,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let method = match kind {
            "positive" => infodisent::explain::dense::POSITIVE,
            "negative" => infodisent::explain::dense::NEGATIVE,
            other => other,
        };
        let map = self.inner.heatmaps.get(method).ok_or_else(|| {
            let have: Vec<&String> = self.inner.heatmaps.0.keys().collect();
            invalid(format!(
                "no heatmap `{kind}`: this explanation has positive, negative and {have:?}"
            ))
        })?;
        let input = self.session.explainer.input_size;
        let (values, h, w) = match size {
            "grid" => (map.values.clone(), map.h, map.w),
            "input" => (map.upsample(input), input, input),
            "image" => match &self.picture {
                Picture::Image(img) => {
                    let geometry =
                        ImageGeometry::new(&self.session.preprocess, img.width(), img.height());
                    let (w, h) = geometry.image_size();
                    (map.on_image(&geometry, input), h as usize, w as usize)
                }
                Picture::View(_) => (map.upsample(input), input, input),
            },
            other => return Err(invalid(format!("size `{other}`: use image, input or grid"))),
        };
        values.into_pyarray(py).reshape([h, w])
    }

    /// Channel `channel`'s training prototypes: dicts with `item`, `path`, `label`, `score`,
    /// `cell` and `input_box`, strongest first, on the side `polarity`.
    #[pyo3(signature = (channel, polarity="positive"))]
    fn prototypes<'py>(
        &self,
        py: Python<'py>,
        channel: usize,
        polarity: &str,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let entry = self
            .session
            .prototypes
            .channels
            .get(channel)
            .ok_or_else(|| {
                invalid(format!(
                    "channel {channel} out of range: the head has {}",
                    self.session.prototypes.channels.len()
                ))
            })?;
        let list = match polarity {
            "positive" => &entry.positive,
            "negative" => &entry.negative,
            other => {
                return Err(invalid(format!(
                    "polarity `{other}`: use positive or negative"
                )))
            }
        };
        list.iter()
            .map(|p| to_python(py, &serde_json::to_value(p).unwrap_or_default()))
            .collect()
    }

    /// The figure `explain` writes, `uint8 [H, W, 3]`: the image with its positive and negative
    /// maps, then the deciding channels with their prototypes.
    fn figure<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray3<u8>>> {
        let fig = py.detach(|| self.draw()).or_raise()?;
        let (w, h) = fig.dimensions();
        fig.into_raw()
            .into_pyarray(py)
            .reshape([h as usize, w as usize, 3])
    }

    /// The figure as PNG bytes.
    fn png<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let png = py
            .detach(|| infodisent::draw::png_bytes(&self.draw()?))
            .or_raise()?;
        Ok(PyBytes::new(py, &png))
    }

    /// In Jupyter: the decision in a sentence and the figure, inline.
    fn _repr_html_(&self, py: Python<'_>) -> PyResult<String> {
        use base64::Engine;
        let png = self.png(py)?;
        let png = png.as_bytes();
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let e = &self.inner;
        let name = e.class_name.clone().unwrap_or_else(|| e.class.to_string());
        Ok(format!(
            "<div><p><b>{}</b>: {} (p = {:.3}); logit {:.3} = {:.3} for + {:.3} against + bias {:.3}; {} channels carry 95%.</p><img src=\"data:image/png;base64,{}\" alt=\"explanation of {}\"></div>",
            escape(&e.source),
            escape(&name),
            e.probability,
            e.logit,
            e.positive_total,
            e.negative_total,
            e.bias,
            e.channels_for_95,
            base64::engine::general_purpose::STANDARD.encode(png),
            escape(&e.source)
        ))
    }

    /// The explanation as `explain --json` writes it, as Python objects.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.json())
    }

    /// The same as a JSON string.
    fn to_json(&self) -> String {
        self.json().to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "Explanation({:?}: {} ({:.3}), {} channels for, {} against)",
            self.inner.source,
            self.inner
                .class_name
                .clone()
                .unwrap_or_else(|| self.inner.class.to_string()),
            self.inner.probability,
            self.inner.positive.len(),
            self.inner.negative.len()
        )
    }
}
