//! Atomic file writes: a reader never sees a half-written file, a killed run leaves no debris
//! that looks finished.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary sibling a file is staged in before it is renamed into place: unique to this
/// process and call, since tasks on other machines of a cluster may share the folder and a
/// process id.
fn staging_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nonce = NONCE.get_or_init(rand::random::<u64>);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}-{nonce:016x}-{call}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Writes `path` atomically with a closure that streams into the temporary file.
pub fn write_atomic_with(
    path: impl AsRef<Path>,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let path = path.as_ref();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = staging_path(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: impl AsRef<Path>, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Config(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Reads and parses a JSON file, naming the file in any error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: impl AsRef<Path>) -> Result<T> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::cache(path, format!("invalid JSON: {e}")))
}

/// How a file that records `target` inside folder `dir` should write it: relative to `dir` when
/// that is shorter (a folder moved together with what it points to still finds it), else
/// absolute. Both are resolved first, so the result never depends on the working directory.
pub fn path_from(dir: &Path, target: &Path) -> Result<String> {
    let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    let target = target.canonicalize().map_err(|e| Error::io(target, e))?;
    let absolute = target.display().to_string();
    Ok(match pathdiff::diff_paths(&target, &dir) {
        Some(relative) if relative.as_os_str().len() < absolute.len() => {
            relative.display().to_string()
        }
        _ => absolute,
    })
}

/// SHA-256 of a file's contents, hex encoded, streamed so large models need no extra memory.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String> {
    use sha2::Digest;
    let path = path.as_ref();
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(h.finalize()))
}

/// SHA-256 of bytes, hex encoded.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Writes `(name, shape, values)` f32 tensors as one safetensors file, atomically.
pub fn write_f32_tensors(
    path: impl AsRef<Path>,
    tensors: &[(&str, Vec<usize>, &[f32])],
    metadata: Option<(&str, &str)>,
) -> Result<()> {
    let path = path.as_ref();
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                shape.clone(),
                bytemuck::cast_slice(data),
            )
            .map(|view| (*name, view))
            .map_err(|e| Error::Shape(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    // At most one metadata entry: safetensors writes a map in hash order, and one entry keeps
    // identical files byte-identical.
    let metadata = metadata.map(|(k, v)| HashMap::from([(k.to_owned(), v.to_owned())]));
    let bytes =
        safetensors::serialize(views, metadata).map_err(|e| Error::cache(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// A tensor read from a file: its shape and values.
pub type F32Tensor = (Vec<usize>, Vec<f32>);

/// Reads the named f32 tensors of a safetensors file as `(shape, values)`, naming the file and
/// the tensor in any error (missing, wrong dtype, corrupt file).
pub fn read_f32_tensors(path: impl AsRef<Path>, names: &[&str]) -> Result<Vec<F32Tensor>> {
    Ok(read_f32_tensors_with(path, names, None)?.0)
}

/// [`read_f32_tensors`], and the value of metadata entry `key` if the file has one.
pub fn read_f32_tensors_with(
    path: impl AsRef<Path>,
    names: &[&str],
    key: Option<&str>,
) -> Result<(Vec<F32Tensor>, Option<String>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::cache(path, format!("corrupt: {e}")))?;
    let value = key.and_then(|k| header.metadata().as_ref()?.get(k).cloned());
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::cache(path, format!("corrupt: {e}")))?;
    let tensors = names
        .iter()
        .map(|&name| {
            let t = st
                .tensor(name)
                .map_err(|_| Error::cache(path, format!("lacks tensor `{name}`")))?;
            if t.dtype() != safetensors::Dtype::F32 {
                return Err(Error::cache(
                    path,
                    format!("`{name}` is {:?}, expected f32", t.dtype()),
                ));
            }
            Ok((t.shape().to_vec(), bytemuck::pod_collect_to_vec(t.data())))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((tensors, value))
}
