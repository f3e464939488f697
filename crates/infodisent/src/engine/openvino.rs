//! Running a prepared backbone with OpenVINO (its C library loaded at run time): the same ONNX
//! graph, feature node exposed as an output, in f32 or, on CPUs with AMX or AVX512-BF16, in
//! bf16.

use super::{Precision, RawOutput};
use crate::error::{Error, Result};
use crate::onnx::model::PreparedModel;
use openvino::{
    CompiledModel, Core, DeviceType, ElementType, InferRequest, RwPropertyKey, Shape, Tensor,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Environment variable naming OpenVINO's `libopenvino_c.so` (or the folder holding it).
pub const LIB_ENV: &str = "OPENVINO_LIB_PATH";

/// The library loaded once per process, or why it could not be.
static LOADED: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

/// Loads OpenVINO's C library on first use; the error says why it is unavailable.
pub fn load() -> std::result::Result<&'static Path, String> {
    LOADED
        .get_or_init(|| {
            let path = find_library()?;
            openvino_sys::library::load_from(path.clone())
                .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
            Ok(path)
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

/// `libopenvino_c.so*` in `dir`, the soversioned name included.
fn library_in(dir: &Path) -> Option<PathBuf> {
    super::library_in(dir, "libopenvino_c.so")
}

/// Where `libopenvino_c.so` is: `$OPENVINO_LIB_PATH` (the file or its folder), the asset
/// folder's `openvino/` (`scripts/fetch-assets.sh`), or the `openvino` package of the `python3`
/// on `PATH`.
pub fn find_library() -> std::result::Result<PathBuf, String> {
    if let Some(value) = std::env::var_os(LIB_ENV) {
        let path = PathBuf::from(value);
        return match path.is_dir() {
            true => library_in(&path)
                .ok_or_else(|| format!("{LIB_ENV}={}: no libopenvino_c.so in it", path.display())),
            false if path.is_file() => Ok(path),
            false => Err(format!("{LIB_ENV}={} does not exist", path.display())),
        };
    }
    if let Some(lib) = crate::assets::assets_dir()
        .ok()
        .and_then(|dir| library_in(&dir.join("openvino")))
    {
        return Ok(lib);
    }
    let python = super::python_package_dir("openvino");
    if let Some(lib) = python.and_then(|dir| library_in(&dir.join("libs"))) {
        return Ok(lib);
    }
    Err(format!(
        "OpenVINO not found: run `scripts/fetch-assets.sh` (it puts its libraries in .assets/openvino/), pip install openvino, or set {LIB_ENV}"
    ))
}

/// A compiled model and its request.
pub(super) struct OpenVinoRunner {
    request: InferRequest,
    /// Kept alive for the request.
    _compiled: CompiledModel,
}

fn fail(model: &PreparedModel, what: &str, e: impl std::fmt::Display) -> Error {
    Error::model(&model.name, format!("OpenVINO {what}: {e}"))
}

impl OpenVinoRunner {
    /// Compiles `model` for the CPU at `precision` on `threads` threads.
    pub(super) fn new(model: &PreparedModel, precision: Precision, threads: usize) -> Result<Self> {
        load().map_err(Error::Runtime)?;
        let hint = match precision {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => {
                return Err(Error::Config(
                    "int8 runs on ONNX Runtime (--engine ort): OpenVINO runs f32 and bf16".into(),
                ))
            }
        };
        let mut core = Core::new().map_err(|e| fail(model, "setup", e))?;
        // The CPU plugin picks bf16 by itself on CPUs with AMX: f32 must be asked for.
        core.set_property(
            &DeviceType::CPU,
            &RwPropertyKey::HintInferencePrecision,
            hint,
        )
        .map_err(|e| fail(model, "precision", e))?;
        core.set_property(
            &DeviceType::CPU,
            &RwPropertyKey::InferenceNumThreads,
            &threads.max(1).to_string(),
        )
        .map_err(|e| fail(model, "threads", e))?;
        let staged = StagedGraph::write(model)?;
        let read = core
            .read_model_from_file(&staged.path().to_string_lossy(), "")
            .map_err(|e| fail(model, "cannot read the graph", e))?;
        let mut compiled = core
            .compile_model(&read, DeviceType::CPU)
            .map_err(|e| fail(model, "cannot compile the graph", e))?;
        let request = compiled
            .create_infer_request()
            .map_err(|e| fail(model, "cannot create a request", e))?;
        Ok(OpenVinoRunner {
            request,
            _compiled: compiled,
        })
    }

    /// Runs `batch` images of side `s`; the outputs as the graph gives them.
    pub(super) fn run(
        &mut self,
        model: &PreparedModel,
        input: &[f32],
        batch: usize,
    ) -> Result<RawOutput> {
        let s = model.preprocess.crop as i64;
        let shape = Shape::new(&[batch as i64, 3, s, s]).map_err(|e| fail(model, "shape", e))?;
        let mut tensor =
            Tensor::new(ElementType::F32, &shape).map_err(|e| fail(model, "input", e))?;
        tensor
            .get_data_mut::<f32>()
            .map_err(|e| fail(model, "input", e))?
            .copy_from_slice(input);
        self.request
            .set_tensor(&model.input_name, &tensor)
            .map_err(|e| fail(model, "input", e))?;
        self.request
            .infer()
            .map_err(|e| fail(model, "run failed", e))?;
        let (shape, features) = self.output(model, &model.feature_output)?;
        let logits = match &model.logits_output {
            Some(name) => Some(self.output(model, name)?),
            None => None,
        };
        Ok(RawOutput {
            shape,
            features,
            logits,
        })
    }

    fn output(&self, model: &PreparedModel, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let tensor = self
            .request
            .get_tensor(name)
            .map_err(|e| fail(model, &format!("the graph does not output `{name}`"), e))?;
        let shape = tensor.get_shape().map_err(|e| fail(model, "output", e))?;
        let dims: Vec<usize> = shape
            .get_dimensions()
            .iter()
            .map(|&d| d.max(0) as usize)
            .collect();
        let data = tensor
            .get_data::<f32>()
            .map_err(|e| fail(model, "output", e))?;
        Ok((dims, data.to_vec()))
    }
}

/// The prepared graph written where OpenVINO can read it: OpenVINO reads external tensor data
/// from files beside the graph, not from memory, so a graph with external data gets links to
/// those files beside it. Removed when dropped.
struct StagedGraph {
    dir: PathBuf,
}

impl StagedGraph {
    fn write(model: &PreparedModel) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "infodisent-openvino-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let staged = StagedGraph { dir };
        if let Some(external) = &model.external {
            let from = external.dir();
            for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
                let path = entry.map_err(|e| Error::io(from, e))?.path();
                if path.is_file() {
                    let link = staged
                        .dir
                        .join(path.file_name().expect("a file has a name"));
                    std::os::unix::fs::symlink(&path, &link).map_err(|e| Error::io(&link, e))?;
                }
            }
        }
        let graph = staged.path();
        let _ = std::fs::remove_file(&graph);
        std::fs::write(&graph, &model.onnx).map_err(|e| Error::io(&graph, e))?;
        Ok(staged)
    }

    fn path(&self) -> PathBuf {
        self.dir.join("infodisent-prepared.onnx")
    }
}

impl Drop for StagedGraph {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
