//! Running a prepared backbone with ONNX Runtime, loaded at run time from
//! `libonnxruntime.so` (the `ort` crate's `load-dynamic`).

use super::RawOutput;
use crate::error::{Error, Result};
use crate::onnx::model::PreparedModel;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Environment variable naming the ONNX Runtime shared library to load.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The process-wide ONNX Runtime environment (the library can be loaded only once).
static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// The loaded ONNX Runtime environment, initialised on first use.
fn environment() -> Result<&'static Environment> {
    ENVIRONMENT
        .get_or_init(|| {
            let lib = find_library()?;
            let builder =
                ort::init_from(&lib).map_err(|e| format!("cannot load {}: {e}", lib.display()))?;
            builder
                .with_name("infodisent")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("cannot initialise {}: {e}", lib.display()))
        })
        .as_ref()
        .map_err(|e| Error::Runtime(e.clone()))
}

/// The library a host program found for us (the Python package: its interpreter's
/// `onnxruntime`), used unless `$ORT_DYLIB_PATH` names another.
static HOST_LIBRARY: OnceLock<PathBuf> = OnceLock::new();

/// Says where the host program's `libonnxruntime.so` is; only the first call counts, and only
/// before the first backbone loads.
pub fn use_library(path: PathBuf) {
    let _ = HOST_LIBRARY.set(path);
}

/// Where `libonnxruntime.so` is: `$ORT_DYLIB_PATH`, the host program's (see [`use_library`]),
/// the asset folder, the `onnxruntime` package of the `python3` on `PATH`, else the pinned
/// release downloaded into the asset folder (Linux x86-64).
pub fn find_library() -> std::result::Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(DYLIB_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{DYLIB_ENV}={} does not exist", path.display()))
        };
    }
    if let Some(path) = HOST_LIBRARY.get() {
        return Ok(path.clone());
    }
    if let Ok(dir) = crate::assets::assets_dir() {
        let path = dir.join(crate::assets::fetch::ONNXRUNTIME);
        if path.is_file() {
            return Ok(path);
        }
    }
    let python = super::python_package_dir("onnxruntime");
    if let Some(path) =
        python.and_then(|dir| super::library_in(&dir.join("capi"), "libonnxruntime.so"))
    {
        return Ok(path);
    }
    crate::assets::asset(crate::assets::fetch::ONNXRUNTIME).map_err(|e| {
        format!("libonnxruntime.so not found ({e}); set {DYLIB_ENV} to a libonnxruntime.so 1.31")
    })
}

/// The ONNX Runtime session option that resolves external tensor files of a model loaded from
/// memory (without it they are looked up in the working directory).
const EXTERNAL_FOLDER_KEY: &str = "session.model_external_initializers_file_folder_path";

/// An ONNX Runtime session over `bytes` (the graph of `model` or a variant of it).
pub(super) fn session(model: &PreparedModel, bytes: &[u8], threads: usize) -> Result<Session> {
    let env = environment()?;
    let fail = |e: String| {
        Error::model(
            &model.name,
            format!("ONNX Runtime cannot load the graph: {e}"),
        )
    };
    let mut builder = Session::builder(env)
        .map_err(|e| fail(e.to_string()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| fail(e.to_string()))?;
    if let Some(external) = &model.external {
        builder = builder
            .with_config_entry(EXTERNAL_FOLDER_KEY, external.dir().to_string_lossy())
            .map_err(|e| fail(e.to_string()))?;
    }
    builder
        .commit_from_memory(bytes)
        .map_err(|e| fail(e.to_string()))
}

/// Runs `batch` images through `session`; the outputs as the graph gives them.
pub(super) fn run(
    session: &mut Session,
    model: &PreparedModel,
    input: &[f32],
    batch: usize,
) -> Result<RawOutput> {
    let s = model.preprocess.crop;
    let name = model.name.clone();
    let rt = |e: ort::Error| Error::model(&name, format!("ONNX Runtime run failed: {e}"));
    let tensor = TensorRef::from_array_view(([batch, 3, s, s], input)).map_err(rt)?;
    let outputs = session
        .run(ort::inputs![model.input_name.as_str() => tensor])
        .map_err(rt)?;
    let value = outputs.get(&model.feature_output).ok_or_else(|| {
        Error::model(
            &name,
            format!("the graph does not output `{}`", model.feature_output),
        )
    })?;
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(rt)?;
    let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let features = data.to_vec();
    let logits = match &model.logits_output {
        Some(out) => {
            let value = outputs
                .get(out)
                .ok_or_else(|| Error::model(&name, format!("the graph does not output `{out}`")))?;
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(rt)?;
            Some((
                shape.iter().map(|&d| d.max(0) as usize).collect(),
                data.to_vec(),
            ))
        }
        None => None,
    };
    Ok(RawOutput {
        shape,
        features,
        logits,
    })
}
