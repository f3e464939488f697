//! Shard files: one safetensors file per run of items, read whole or row by row.

use crate::error::{Error, Result};
use half::f16;
use safetensors::tensor::{Dtype, TensorView};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{Shard, StoreDtype};

fn tensor_f32(path: &Path, t: &TensorView<'_>) -> Result<Vec<f32>> {
    decode_f32(path, t.dtype(), t.data())
}

/// Little-endian f16 or f32 feature bytes as f32.
fn decode_f32(path: &Path, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>> {
    match dtype {
        Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::F16 => Ok(data
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()),
        other => Err(Error::cache(
            path,
            format!("expected f16/f32 tensor, found {other:?}"),
        )),
    }
}

fn tensor_i64(path: &Path, t: &TensorView<'_>) -> Result<Vec<i64>> {
    if t.dtype() != Dtype::I64 {
        return Err(Error::cache(
            path,
            format!("expected i64 tensor, found {:?}", t.dtype()),
        ));
    }
    Ok(t.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

/// One shard file opened for reading single rows of its features and labels.
pub(super) struct ShardRows {
    path: PathBuf,
    file: std::fs::File,
    data_start: u64,
    features_start: u64,
    /// How feature values are stored (f16 or f32; anything else is refused when read).
    dtype: Dtype,
    labels_start: u64,
    per_image: usize,
    /// Where the f32 logits `[rows, C]` start, and C, when the shard stores them.
    logits: Option<(u64, usize)>,
}

impl ShardRows {
    /// Opens a shard and checks that its features have `shape`.
    pub(super) fn open(path: &Path, shape: [usize; 4]) -> Result<Self> {
        use std::io::Read;
        let corrupt = |msg: String| Error::cache(path, format!("corrupt shard: {msg}"));
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|e| Error::io(path, e))?;
        let n = u64::from_le_bytes(n);
        if n > 100 << 20 {
            return Err(corrupt(format!("header of {n} bytes")));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header)
            .map_err(|e| Error::io(path, e))?;
        // The header alone (safetensors' own reader insists on the whole file).
        #[derive(serde::Deserialize)]
        struct Info {
            dtype: Dtype,
            shape: Vec<usize>,
            data_offsets: (u64, u64),
        }
        let mut meta: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| corrupt(e.to_string()))?;
        let has_logits = meta.contains_key("logits");
        let mut tensor = |name: &str| -> Result<Info> {
            let value = meta
                .remove(name)
                .ok_or_else(|| Error::cache(path, format!("shard lacks tensor `{name}`")))?;
            serde_json::from_value(value).map_err(|e| corrupt(format!("`{name}`: {e}")))
        };
        let feats = tensor("features")?;
        if feats.shape != shape {
            return Err(Error::cache(
                path,
                format!(
                    "features have shape {:?}, manifest says {shape:?}",
                    feats.shape
                ),
            ));
        }
        let per_image = shape[1] * shape[2] * shape[3];
        let labels = tensor("labels")?;
        let span = |(start, end): (u64, u64)| end.checked_sub(start);
        let sizes_ok = span(feats.data_offsets)
            == Some((shape[0] * per_image * feats.dtype.bitsize().div_ceil(8)) as u64)
            && span(labels.data_offsets) == Some((shape[0] * 8) as u64);
        if labels.shape != [shape[0]] || labels.dtype != Dtype::I64 || !sizes_ok {
            return Err(corrupt("tensor sizes do not match their shapes".to_owned()));
        }
        let logits = match has_logits {
            true => {
                let t = tensor("logits")?;
                let classes = t.shape.get(1).copied().unwrap_or(0);
                if t.dtype != Dtype::F32
                    || t.shape != [shape[0], classes]
                    || span(t.data_offsets) != Some((shape[0] * classes * 4) as u64)
                {
                    return Err(corrupt("`logits` size does not match its shape".to_owned()));
                }
                Some((t.data_offsets.0, classes))
            }
            false => None,
        };
        Ok(ShardRows {
            path: path.to_path_buf(),
            file,
            data_start: 8 + n,
            features_start: feats.data_offsets.0,
            dtype: feats.dtype,
            labels_start: labels.data_offsets.0,
            per_image,
            logits,
        })
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .read_exact_at(buf, self.data_start + offset)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Row `row` of the features, as f32, into `out`.
    pub(super) fn features(&mut self, row: usize, out: &mut [f32]) -> Result<()> {
        let width = self.dtype.bitsize().div_ceil(8);
        let mut bytes = vec![0u8; self.per_image * width];
        self.read_at(
            self.features_start + (row * self.per_image * width) as u64,
            &mut bytes,
        )?;
        out.copy_from_slice(&decode_f32(&self.path, self.dtype, &bytes)?);
        if out.iter().any(|v| !v.is_finite()) {
            return Err(Error::cache(
                &self.path,
                format!("features of row {row} contain NaN or infinity"),
            ));
        }
        Ok(())
    }

    /// Label of row `row`.
    pub(super) fn label(&mut self, row: usize) -> Result<i64> {
        let mut b = [0u8; 8];
        self.read_at(self.labels_start + (row * 8) as u64, &mut b)?;
        Ok(i64::from_le_bytes(b))
    }

    /// Logits of `rows`, `[rows, C]`, when the shard stores them.
    pub(super) fn logits(&mut self, rows: std::ops::Range<usize>) -> Result<Option<Vec<f32>>> {
        let Some((start, classes)) = self.logits else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; rows.len() * classes * 4];
        self.read_at(start + (rows.start * classes * 4) as u64, &mut bytes)?;
        let values = decode_f32(&self.path, Dtype::F32, &bytes)?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::cache(&self.path, "logits contain NaN or infinity"));
        }
        Ok(Some(values))
    }
}

/// Reads a whole shard holding `items` of its split; the rows' item indices are those.
pub(super) fn read_shard_file(
    path: &Path,
    shape: [usize; 3],
    orig_classes: Option<usize>,
    items: Range<usize>,
) -> Result<Shard> {
    let expected = items.len();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::cache(path, format!("corrupt shard: {e}")))?;
    let get = |name: &str| {
        st.tensor(name)
            .map_err(|_| Error::cache(path, format!("shard lacks tensor `{name}`")))
    };
    let feats = get("features")?;
    let want = [expected, shape[0], shape[1], shape[2]];
    if feats.shape() != want {
        return Err(Error::cache(
            path,
            format!(
                "features have shape {:?}, manifest says {:?}",
                feats.shape(),
                want
            ),
        ));
    }
    let features = tensor_f32(path, &feats)?;
    if features.iter().any(|v| !v.is_finite()) {
        return Err(Error::cache(path, "features contain NaN or infinity"));
    }
    let labels = tensor_i64(path, &get("labels")?)?;
    // The file's "index" names listed items (skips included); readers count kept items.
    let listed = tensor_i64(path, &get("index")?)?;
    if labels.len() != expected || listed.len() != expected {
        return Err(Error::cache(
            path,
            "labels/index length does not match the features",
        ));
    }
    let logits = match (orig_classes, st.tensor("logits").ok()) {
        (Some(c), Some(t)) => {
            if t.shape() != [expected, c] {
                return Err(Error::cache(
                    path,
                    format!(
                        "logits have shape {:?}, expected [{expected}, {c}]",
                        t.shape()
                    ),
                ));
            }
            Some(tensor_f32(path, &t)?)
        }
        _ => None,
    };
    Ok(Shard {
        len: expected,
        features,
        labels,
        logits,
        index: items.map(|i| i as i64).collect(),
    })
}

/// One shard's rows, ready to be written.
pub struct ShardData<'a> {
    /// Features `[n, D, h, w]`, f32 (stored in the cache's precision).
    pub features: &'a [f32],
    /// Labels `[n]`.
    pub labels: &'a [i64],
    /// Original logits `[n, C]`, when the model has a classifier.
    pub logits: Option<&'a [f32]>,
    /// Each row's index among the split's listed items.
    pub listed: &'a [i64],
}

/// The safetensors bytes of a shard and the digest of its content: listed indices, labels,
/// stored features and logits, in that order, so two caches with equal digests hold equal
/// bits.
pub(super) fn encode(
    data: &ShardData<'_>,
    shape: [usize; 3],
    dtype: StoreDtype,
    classes: Option<usize>,
) -> Result<(Vec<u8>, String)> {
    let [d, h, w] = shape;
    let n = data.labels.len();
    let (feat_dtype, feat_bytes): (Dtype, Vec<u8>) = match dtype {
        StoreDtype::F32 => (Dtype::F32, bytemuck::cast_slice(data.features).to_vec()),
        StoreDtype::F16 => (
            Dtype::F16,
            data.features
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
    };
    let label_bytes: &[u8] = bytemuck::cast_slice(data.labels);
    let index_bytes: &[u8] = bytemuck::cast_slice(data.listed);
    let logit_bytes: Option<(&[u8], usize)> = data
        .logits
        .zip(classes)
        .map(|(l, c)| (bytemuck::cast_slice(l), c));
    let shape_err = |e: safetensors::SafeTensorError| Error::Shape(e.to_string());
    let mut tensors = vec![
        (
            "features",
            TensorView::new(feat_dtype, vec![n, d, h, w], &feat_bytes).map_err(shape_err)?,
        ),
        (
            "labels",
            TensorView::new(Dtype::I64, vec![n], label_bytes).map_err(shape_err)?,
        ),
        (
            "index",
            TensorView::new(Dtype::I64, vec![n], index_bytes).map_err(shape_err)?,
        ),
    ];
    if let Some((bytes, c)) = logit_bytes {
        tensors.push((
            "logits",
            TensorView::new(Dtype::F32, vec![n, c], bytes).map_err(shape_err)?,
        ));
    }
    let digest = digest(
        index_bytes,
        label_bytes,
        &feat_bytes,
        logit_bytes.map(|(b, _)| b),
    );
    let bytes = safetensors::serialize(tensors, None).map_err(|e| Error::Shape(e.to_string()))?;
    Ok((bytes, digest))
}

fn digest(index: &[u8], labels: &[u8], features: &[u8], logits: Option<&[u8]>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [index, labels, features, logits.unwrap_or_default()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The digest [`encode`] gave a shard, computed again from the file.
pub(super) fn digest_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::cache(path, format!("corrupt shard: {e}")))?;
    let get = |name: &str| {
        st.tensor(name)
            .map(|t| t.data())
            .map_err(|_| Error::cache(path, format!("shard lacks tensor `{name}`")))
    };
    let logits = st.tensor("logits").ok().map(|t| t.data());
    Ok(digest(
        get("index")?,
        get("labels")?,
        get("features")?,
        logits,
    ))
}
