//! One file per checkpoint: named f32 tensors and one JSON state record in the safetensors
//! metadata, written atomically, so a kill can never pair one epoch's state with another
//! epoch's parameters; and the per-epoch metrics log (`metrics.jsonl`) beside it. Both trainers
//! (heads, MI) use it.

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key of the JSON state record.
const STATE_KEY: &str = "infodisent.state";

/// An f32 tensor with its name and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Key in the file.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

impl NamedTensor {
    /// Bundles a tensor.
    pub fn new(name: String, shape: Vec<usize>, values: Vec<f32>) -> Self {
        NamedTensor {
            name,
            shape,
            values,
        }
    }
}

/// A checkpoint read back: its state record and its tensors, checked on access.
pub struct Checkpoint<S> {
    /// The JSON state record.
    pub state: S,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    path: PathBuf,
}

impl<S> Checkpoint<S> {
    /// The values of tensor `name`, which must have `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        match self.tensors.get(name) {
            None => Err(self.corrupt(format!("lacks `{name}`"))),
            Some((s, _)) if s != shape => Err(self.corrupt(format!(
                "`{name}` has shape {s:?}, this run needs {shape:?}"
            ))),
            Some((_, v)) => Ok(v.clone()),
        }
    }

    /// Whether any tensor name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.tensors.keys().any(|k| k.starts_with(prefix))
    }

    fn corrupt(&self, msg: String) -> Error {
        Error::cache(&self.path, format!("corrupt checkpoint: {msg}"))
    }
}

/// Writes `state` and `tensors` to `path` as one safetensors file, atomically.
pub fn save<S: Serialize>(path: &Path, state: &S, tensors: &[NamedTensor]) -> Result<()> {
    let err = |e: safetensors::SafeTensorError| Error::cache(path, e.to_string());
    let views = tensors
        .iter()
        .map(|t| {
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                t.shape.clone(),
                bytemuck::cast_slice(&t.values),
            )
            .map_err(err)?;
            Ok((t.name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    // One metadata entry: safetensors writes a map in hash order, which would make otherwise
    // identical checkpoints differ byte-wise.
    let record = serde_json::to_string(state).map_err(|e| Error::Config(e.to_string()))?;
    let meta = HashMap::from([(STATE_KEY.to_owned(), record)]);
    let bytes = safetensors::serialize(views, Some(meta)).map_err(err)?;
    write_atomic(path, &bytes)
}

/// Reads only the state record (to decide whether a checkpoint belongs to this run).
pub fn read_state<S: DeserializeOwned>(path: &Path) -> Result<S> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_state(path, &bytes)
}

fn parse_state<S: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<S> {
    let corrupt = |msg: String| Error::cache(path, format!("corrupt checkpoint: {msg}"));
    let (_, header) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
    let record = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| {
            corrupt("no state record (written by an older version: start a new run)".into())
        })?;
    serde_json::from_str(record).map_err(|e| corrupt(format!("unreadable state: {e}")))
}

/// Reads a checkpoint written by [`save`].
pub fn load<S: DeserializeOwned>(path: &Path) -> Result<Checkpoint<S>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let state = parse_state(path, &bytes)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::cache(path, format!("corrupt checkpoint: {e}")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(Error::cache(
                path,
                format!(
                    "corrupt checkpoint: `{name}` is {:?}, not f32",
                    view.dtype()
                ),
            ));
        }
        tensors.insert(
            name,
            (
                view.shape().to_vec(),
                bytemuck::pod_collect_to_vec(view.data()),
            ),
        );
    }
    Ok(Checkpoint {
        state,
        tensors,
        path: path.to_path_buf(),
    })
}

/// Writes one JSON line per row, atomically.
pub fn write_log<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(&serde_json::to_string(row).map_err(|e| Error::Config(e.to_string()))?);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Reads what [`write_log`] wrote (an absent file is an empty log).
pub fn read_log<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| Error::cache(path, format!("invalid line: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_tensors_round_trip_and_shapes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let t = NamedTensor::new("param.w".into(), vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        save(&path, &(3u32, "x".to_owned()), std::slice::from_ref(&t)).unwrap();
        let first = std::fs::read(&path).unwrap();
        save(&path, &(3u32, "x".to_owned()), &[t]).unwrap();
        assert_eq!(
            first,
            std::fs::read(&path).unwrap(),
            "byte-identical rewrites"
        );
        let c: Checkpoint<(u32, String)> = load(&path).unwrap();
        assert_eq!(c.state, (3, "x".to_owned()));
        assert_eq!(
            c.tensor("param.w", &[2, 2]).unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
        assert!(c.tensor("param.w", &[4]).is_err());
        assert!(c.tensor("param.b", &[2]).is_err());
        assert!(c.has_prefix("param.") && !c.has_prefix("best."));
        let log = dir.path().join("m.jsonl");
        write_log(&log, &[1, 2, 3]).unwrap();
        assert_eq!(read_log::<i32>(&log).unwrap(), vec![1, 2, 3]);
    }
}
