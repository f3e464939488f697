//! Reader for legacy (pre-zip) PyTorch `.pth` state dicts.
//!
//! Layout: three small pickles (magic number, protocol version, system info), then the state-dict
//! pickle whose tensors reference storages through persistent ids, then a pickle listing the
//! storage keys, then for each key an 8-byte little-endian element count and the raw
//! little-endian data. candle's pickle VM decodes the pickles; storages are sliced here.

use crate::error::{Error, Result};
use candle_core::pickle::{Object, Stack};
use candle_core::DType;
use std::collections::HashMap;
use std::io::{BufRead, Cursor, Read};
use std::path::Path;

/// The first pickle legacy `torch.save` writes: protocol 2, the 10-byte magic number
/// 0x1950a86a20f9469cfc6c as LONG1, STOP. Matched byte for byte because the number does not fit
/// the pickle VM's i64.
const MAGIC_PICKLE: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
];

/// A float tensor read from a state dict.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

/// Reads every float tensor of a legacy `.pth` state dict (integer buffers such as
/// `num_batches_tracked` are skipped).
pub fn read_state_dict(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    // The pickle VM is third-party code fed with user files: a panic in it becomes an error.
    let parsed = std::panic::catch_unwind(|| parse_state_dict(&bytes))
        .unwrap_or_else(|_| Err("the pickle VM failed".into()));
    parsed.map_err(|msg| {
        Error::model(
            path,
            format!("not a readable legacy PyTorch state dict: {msg}"),
        )
    })
}

fn parse_state_dict(bytes: &[u8]) -> std::result::Result<HashMap<String, Tensor>, String> {
    if !bytes.starts_with(&MAGIC_PICKLE) {
        return Err("it does not start with the legacy magic number (zip-format .pth files are not supported)".into());
    }
    let mut r = Cursor::new(bytes);
    r.set_position(MAGIC_PICKLE.len() as u64);
    read_pickle(&mut r)?;
    read_pickle(&mut r)?;
    let Object::Dict(entries) = read_pickle(&mut r)? else {
        return Err("the state dict is not a dictionary".into());
    };
    let keys = match read_pickle(&mut r)? {
        Object::List(keys) => keys
            .into_iter()
            .map(|k| k.unicode().map_err(|k| format!("bad storage key {k:?}")))
            .collect::<std::result::Result<Vec<_>, _>>()?,
        other => return Err(format!("expected the storage key list, found {other:?}")),
    };
    let mut infos = Vec::new();
    for (name, value) in entries {
        let name_str = name
            .clone()
            .unicode()
            .map_err(|n| format!("non-string key {n:?}"))?;
        // Non-tensor entries (such as `_metadata`) carry nothing the graph needs.
        if let Some(info) = value
            .into_tensor_info(name, Path::new(""))
            .map_err(|e| format!("tensor `{name_str}`: {e}"))?
        {
            infos.push(info);
        }
    }
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let mut count = [0u8; 8];
        r.read_exact(&mut count)
            .map_err(|_| format!("truncated before storage `{key}`"))?;
        let count = u64::from_le_bytes(count) as usize;
        let elem = infos
            .iter()
            .find(|i| i.path.trim_start_matches('/') == key)
            .map_or(4, |i| i.dtype.size_in_bytes());
        let start = r.position() as usize;
        let end = count
            .checked_mul(elem)
            .and_then(|n| n.checked_add(start))
            .filter(|&e| e <= bytes.len());
        let end = end.ok_or_else(|| format!("storage `{key}` runs past the end of the file"))?;
        storages.insert(key, &bytes[start..end]);
        r.set_position(end as u64);
    }
    let mut tensors = HashMap::new();
    for info in infos {
        if info.dtype != DType::F32 {
            continue;
        }
        let key = info.path.trim_start_matches('/');
        let storage = storages
            .get(key)
            .ok_or_else(|| format!("tensor `{}` refers to missing storage `{key}`", info.name))?;
        let shape = info.layout.shape().dims().to_vec();
        let data = strided_f32(
            storage,
            &shape,
            info.layout.stride(),
            info.layout.start_offset(),
        )
        .ok_or_else(|| format!("tensor `{}` lies outside its storage", info.name))?;
        tensors.insert(info.name, Tensor { shape, data });
    }
    Ok(tensors)
}

/// Gathers a (possibly transposed) view of f32 storage into row-major order; `start` is in bytes,
/// `stride` in elements.
fn strided_f32(
    storage: &[u8],
    shape: &[usize],
    stride: &[usize],
    start: usize,
) -> Option<Vec<f32>> {
    let count: usize = shape.iter().product();
    let mut data = Vec::with_capacity(count);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        let offset = start + 4 * index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
        let bytes = storage.get(offset..offset + 4)?;
        data.push(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Some(data)
}

fn read_pickle<R: BufRead>(r: &mut R) -> std::result::Result<Object, String> {
    let mut stack = Stack::empty();
    stack
        .read_loop(r)
        .map_err(|e| format!("corrupt pickle: {e}"))?;
    stack.finalize().map_err(|e| format!("corrupt pickle: {e}"))
}
