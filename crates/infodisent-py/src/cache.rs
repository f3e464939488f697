//! `Cache`: a feature cache made by `extract` (the CLI's or Python's), read as numpy arrays.

use crate::errors::OrRaise;
use infodisent::cache::FeatureCache;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray4, PyArrayMethods};
use pyo3::prelude::*;
use std::path::PathBuf;

/// A batch as Python receives it: features `float32 [n, D, h, w]` and labels `int64 [n]`.
type Batch<'py> = (Bound<'py, PyArray4<f32>>, Bound<'py, PyArray1<i64>>);

/// A feature cache: per split, each image's feature map `[D, h, w]`, its label and the
/// original classifier's logits.
#[pyclass(module = "infodisent", frozen)]
pub struct Cache {
    pub(crate) inner: FeatureCache,
}

impl Cache {
    fn shape(&self) -> [usize; 3] {
        self.inner.feature_shape()
    }
}

#[pymethods]
impl Cache {
    /// Opens the cache in folder `path`.
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| FeatureCache::open(&path)).or_raise()?;
        Ok(Cache { inner })
    }

    /// The cache's folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.dir().to_path_buf()
    }

    /// The splits, in order.
    #[getter]
    fn splits(&self) -> Vec<String> {
        self.inner.manifest().splits.keys().cloned().collect()
    }

    /// The class names, indexed by label.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.inner.manifest().classes.clone()
    }

    /// `(D, h, w)` of one image's features.
    #[getter]
    fn feature_shape(&self) -> (usize, usize, usize) {
        let [d, h, w] = self.shape();
        (d, h, w)
    }

    /// The model that made the cache.
    #[getter]
    fn model(&self) -> String {
        self.inner.manifest().model.clone()
    }

    /// Images in `split`.
    fn size(&self, split: &str) -> PyResult<usize> {
        Ok(self.inner.split(split).or_raise()?.num_items)
    }

    /// Each image's path in `split` (`file#index` for IDX datasets).
    fn paths(&self, split: &str) -> PyResult<Vec<String>> {
        Ok(self
            .inner
            .items(split)
            .or_raise()?
            .into_iter()
            .map(|i| i.path)
            .collect())
    }

    /// Every feature map of `split`, `float32 [N, D, h, w]`.
    fn features<'py>(&self, py: Python<'py>, split: &str) -> PyResult<Bound<'py, PyArray4<f32>>> {
        let shard = py.detach(|| self.inner.read_split(split)).or_raise()?;
        let [d, h, w] = self.shape();
        shard
            .features
            .into_pyarray(py)
            .reshape([shard.len, d, h, w])
    }

    /// Every label of `split`, `int64 [N]`.
    fn labels<'py>(&self, py: Python<'py>, split: &str) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let labels: Vec<i64> = self
            .inner
            .items(split)
            .or_raise()?
            .into_iter()
            .map(|i| i.label)
            .collect();
        Ok(labels.into_pyarray(py))
    }

    /// The original classifier's logits on `split`, `float32 [N, K]`, or None when the model
    /// has no classifier.
    fn logits<'py>(
        &self,
        py: Python<'py>,
        split: &str,
    ) -> PyResult<Option<Bound<'py, PyArray2<f32>>>> {
        let shard = py.detach(|| self.inner.read_split(split)).or_raise()?;
        match shard.logits {
            Some(l) if shard.len > 0 => {
                let k = l.len() / shard.len;
                Ok(Some(l.into_pyarray(py).reshape([shard.len, k])?))
            }
            _ => Ok(None),
        }
    }

    /// Features and labels of items `indices` of `split` (the streamed reading behind
    /// `batches`): `(float32 [n, D, h, w], int64 [n])`.
    fn read<'py>(&self, py: Python<'py>, split: &str, indices: Vec<usize>) -> PyResult<Batch<'py>> {
        let shard = py
            .detach(|| self.inner.read_items(split, &indices))
            .or_raise()?;
        let [d, h, w] = self.shape();
        Ok((
            shard
                .features
                .into_pyarray(py)
                .reshape([shard.len, d, h, w])?,
            shard.labels.into_pyarray(py),
        ))
    }

    /// Features and labels of `split`, `batch` images at a time, in item order, for caches
    /// too large to read whole.
    #[pyo3(signature = (split, batch=256))]
    fn batches(&self, split: &str, batch: usize) -> PyResult<Batches> {
        let n = self.inner.split(split).or_raise()?.num_items;
        Ok(Batches {
            cache: self.inner.clone(),
            split: split.to_owned(),
            next: 0,
            n,
            batch: batch.max(1),
        })
    }

    fn __repr__(&self) -> String {
        let m = self.inner.manifest();
        let splits: Vec<String> = m
            .splits
            .iter()
            .map(|(name, s)| format!("{name}: {}", s.num_items))
            .collect();
        format!(
            "Cache({:?}, model={:?}, features={:?}, {})",
            self.inner.dir().display().to_string(),
            m.model,
            m.feature_shape,
            splits.join(", ")
        )
    }
}

/// The iterator `Cache.batches` returns.
#[pyclass(module = "infodisent")]
pub struct Batches {
    cache: FeatureCache,
    split: String,
    next: usize,
    n: usize,
    batch: usize,
}

#[pymethods]
impl Batches {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Batch<'py>>> {
        if self.next >= self.n {
            return Ok(None);
        }
        let end = (self.next + self.batch).min(self.n);
        let indices: Vec<usize> = (self.next..end).collect();
        self.next = end;
        let (cache, split) = (&self.cache, &self.split);
        let shard = py.detach(|| cache.read_items(split, &indices)).or_raise()?;
        let [d, h, w] = cache.feature_shape();
        Ok(Some((
            shard
                .features
                .into_pyarray(py)
                .reshape([shard.len, d, h, w])?,
            shard.labels.into_pyarray(py),
        )))
    }
}
