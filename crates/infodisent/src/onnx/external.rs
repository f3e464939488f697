//! Tensors stored outside the `.onnx` file (`model.onnx.data`, as `torch.onnx.export` writes by
//! default), resolved as ONNX Runtime's own loaders do: relative to the model's folder. A model
//! file is user input, so a location may not leave that folder: absolute paths, `..` and links
//! pointing elsewhere are refused before anything is read.

use onnx_protobuf::{GraphProto, ModelProto, TensorProto};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// The folder a model's external tensor files must live in.
#[derive(Debug, Clone)]
pub struct ExternalData {
    dir: PathBuf,
}

/// Where one tensor's bytes are: a file inside the model folder and a byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    file: PathBuf,
    offset: u64,
    length: Option<u64>,
}

impl ExternalData {
    /// The rule for a model read from `model_path`: its (canonical) folder.
    pub fn beside(model_path: &Path) -> Result<Self, String> {
        let parent = model_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = parent.canonicalize().map_err(|e| {
            format!(
                "cannot resolve the model's folder {}: {e}",
                parent.display()
            )
        })?;
        Ok(ExternalData { dir })
    }

    /// The folder external files are resolved in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks every external reference in `model` (initializers, constants, subgraphs) and
    /// returns the distinct files they name, in first-use order.
    pub fn validate(&self, model: &ModelProto) -> Result<Vec<PathBuf>, String> {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut check = |t: &TensorProto| -> Result<(), String> {
            let loc = self.locate(t)?;
            let size = std::fs::metadata(&loc.file)
                .map_err(|e| format!("tensor `{}`: {}: {e}", t.name, loc.file.display()))?
                .len();
            let end = loc.offset.checked_add(loc.length.unwrap_or(0));
            if end.is_none_or(|end| end > size) {
                return Err(format!(
                    "tensor `{}` reads bytes {}..{} of {}, which holds {size}",
                    t.name,
                    loc.offset,
                    loc.offset.saturating_add(loc.length.unwrap_or(0)),
                    loc.file.display()
                ));
            }
            if !files.contains(&loc.file) {
                files.push(loc.file);
            }
            Ok(())
        };
        if let Some(graph) = model.graph.as_ref() {
            visit_tensors(graph, &mut check)?;
        }
        Ok(files)
    }

    /// The raw little-endian bytes of an external tensor (`expected` bytes when the tensor does
    /// not state its length).
    pub fn read(&self, t: &TensorProto, expected: usize) -> Result<Vec<u8>, String> {
        let loc = self.locate(t)?;
        let length = loc.length.unwrap_or(expected as u64);
        if length != expected as u64 {
            return Err(format!(
                "tensor `{}` stores {length} external bytes, its dims need {expected}",
                t.name
            ));
        }
        let fail = |e: std::io::Error| format!("tensor `{}`: {}: {e}", t.name, loc.file.display());
        let mut f = std::fs::File::open(&loc.file).map_err(fail)?;
        f.seek(SeekFrom::Start(loc.offset)).map_err(fail)?;
        let mut bytes = vec![0u8; expected];
        f.read_exact(&mut bytes).map_err(fail)?;
        Ok(bytes)
    }

    /// Resolves a tensor's `location`, refusing anything that would leave the model folder.
    fn locate(&self, t: &TensorProto) -> Result<Location, String> {
        let entry = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.as_str())
        };
        let location = entry("location")
            .ok_or_else(|| format!("tensor `{}` is external but names no location", t.name))?;
        let number = |key: &str| -> Result<Option<u64>, String> {
            entry(key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        format!("tensor `{}` has external {key} `{v}`, not a number", t.name)
                    })
                })
                .transpose()
        };
        let refuse = |why: &str| {
            format!(
                "tensor `{}` points outside the model's folder ({why}: `{location}`); \
                 external data must sit beside the model",
                t.name
            )
        };
        let relative = Path::new(location);
        for part in relative.components() {
            match part {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => return Err(refuse("a `..` component")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(refuse("an absolute path"))
                }
            }
        }
        if location.is_empty() {
            return Err(format!(
                "tensor `{}` has an empty external location",
                t.name
            ));
        }
        let joined = self.dir.join(relative);
        let file = joined.canonicalize().map_err(|e| {
            format!(
                "tensor `{}` stores its data in {}, which cannot be opened: {e}",
                t.name,
                joined.display()
            )
        })?;
        if !file.starts_with(&self.dir) {
            return Err(refuse("a link that leaves the folder"));
        }
        if !file.is_file() {
            return Err(format!(
                "tensor `{}` stores its data in {}, which is not a file",
                t.name,
                file.display()
            ));
        }
        Ok(Location {
            file,
            offset: number("offset")?.unwrap_or(0),
            length: number("length")?,
        })
    }
}

/// Whether a tensor keeps its values in an external file.
pub fn is_external(t: &TensorProto) -> bool {
    t.data_location.enum_value() == Ok(onnx_protobuf::tensor_proto::DataLocation::EXTERNAL)
        || !t.external_data.is_empty()
}

/// Calls `f` on every external tensor of `graph` and its subgraphs.
fn visit_tensors(
    graph: &GraphProto,
    f: &mut impl FnMut(&TensorProto) -> Result<(), String>,
) -> Result<(), String> {
    for t in graph.initializer.iter().filter(|t| is_external(t)) {
        f(t)?;
    }
    for sparse in &graph.sparse_initializer {
        for t in sparse.values.iter().chain(sparse.indices.iter()) {
            if is_external(t) {
                f(t)?;
            }
        }
    }
    for node in &graph.node {
        for attr in &node.attribute {
            for t in attr.t.iter().chain(attr.tensors.iter()) {
                if is_external(t) {
                    f(t)?;
                }
            }
            for g in attr.g.iter().chain(attr.graphs.iter()) {
                visit_tensors(g, f)?;
            }
        }
    }
    Ok(())
}
