//! Any ONNX image classifier as a feature extractor: parse the model, find the last spatial feature
//! map it pools and its final linear layer, and expose the feature map as an extra graph output
//! so one run yields both features and the original logits.

pub mod build;
pub mod detect;
pub mod external;
pub mod flops;
pub mod graph;
pub mod model;
pub mod quantize;
pub mod shapes;

pub use flops::count_flops;

use crate::error::{Error, Result};
use crate::onnx::model::{FeatureLayout, PreparedModel};
use crate::preprocess::Preprocess;
use external::ExternalData;
use graph::{dtype, GraphView};
use onnx_protobuf::{type_proto, ModelProto};
use protobuf::Message;
use std::path::Path;

/// The image side assumed when the graph's input size is symbolic and the caller gives none.
pub const DEFAULT_INPUT_SIZE: usize = 224;

/// Parses ONNX bytes; `origin` names the file in errors.
pub fn parse(bytes: &[u8], origin: &Path) -> Result<ModelProto> {
    let model = ModelProto::parse_from_bytes(bytes)
        .map_err(|e| Error::model(origin, format!("not a readable ONNX model ({e})")))?;
    match model.graph.as_ref() {
        Some(g) if !g.node.is_empty() => Ok(model),
        _ => Err(Error::model(
            origin,
            "not an ONNX model: it holds no graph nodes",
        )),
    }
}

/// Reads an `.onnx` file and prepares it (see [`prepare`]). Tensors stored in external files
/// (`model.onnx.data`) are resolved in the model's folder, whatever the working directory, and
/// may not point outside it.
pub fn prepare_file(path: &Path, feature_node: Option<&str>) -> Result<PreparedModel> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let model = parse(&bytes, path)?;
    let name = path
        .file_stem()
        .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned());
    let external = ExternalData::beside(path).map_err(|msg| Error::model(path, msg))?;
    let files = external
        .validate(&model)
        .map_err(|msg| Error::model(path, msg))?;
    let external = (!files.is_empty()).then_some(external);
    let mut prepared = prepare_inner(model, path, &name, feature_node, None, external)?;
    if !files.is_empty() {
        // The weights live outside the graph bytes: a changed data file must change every
        // fingerprint built on this model.
        let mut key = prepared.fingerprint.clone();
        for f in &files {
            key.push_str(&crate::fsutil::sha256_file(f)?);
        }
        prepared.fingerprint = crate::fsutil::sha256_bytes(key.as_bytes());
    }
    Ok(prepared)
}

/// Finds the feature map (or takes `feature_node`, a node or value name) and the classifier of
/// `model`, adds the feature map (and logits, if internal) as graph outputs and serializes the
/// result. Preprocessing defaults to the torchvision convention (ImageNet mean/std, resize =
/// 256/224 × crop); callers with better knowledge (the built-ins) overwrite it.
pub fn prepare(
    model: ModelProto,
    origin: &Path,
    name: &str,
    feature_node: Option<&str>,
) -> Result<PreparedModel> {
    prepare_inner(model, origin, name, feature_node, None, None)
}

/// [`prepare`] with the input side to assume when the graph's input size is symbolic.
pub fn prepare_sized(
    model: ModelProto,
    origin: &Path,
    name: &str,
    feature_node: Option<&str>,
    symbolic_size: Option<usize>,
) -> Result<PreparedModel> {
    prepare_inner(model, origin, name, feature_node, symbolic_size, None)
}

fn prepare_inner(
    mut model: ModelProto,
    origin: &Path,
    name: &str,
    feature_node: Option<&str>,
    symbolic_size: Option<usize>,
    external: Option<ExternalData>,
) -> Result<PreparedModel> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::model(origin, "the model has no graph"))?;
    let view = GraphView::new(graph, external.as_ref());
    let (input_name, size) = image_input(&view).map_err(|msg| Error::model(origin, msg))?;
    let size = size.or(symbolic_size).unwrap_or(DEFAULT_INPUT_SIZE);
    let shapes = shapes::infer(&view, 1, size);
    let found =
        detect::detect(&view, &shapes, feature_node).map_err(|msg| Error::model(origin, msg))?;
    let feature_shape = match (shapes.get(&found.feature_value), found.layout) {
        (Some(&[_, d, h, w]), FeatureLayout::Nchw) => [d, h, w],
        (Some(&[_, h, w, d]), FeatureLayout::Nhwc) => [d, h, w],
        (Some(&[_, t, d]), FeatureLayout::Tokens { skip }) => {
            let side = ((t - skip) as f64).sqrt().round() as usize;
            if side * side == t - skip {
                [d, side, side]
            } else {
                [0, 0, 0]
            }
        }
        // Added nodes and exporter glue leave shapes unknown: the engine's probe run fills them.
        _ => [0, 0, 0],
    };
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| Error::model(origin, "the model has no graph"))?;
    graph.node.extend(found.extra_nodes.iter().cloned());
    let mut expose = |value: &str| {
        if !graph.output.iter().any(|o| o.name == value) {
            graph
                .output
                .push(build::value_info(value, dtype::FLOAT, None));
        }
    };
    expose(&found.feature_value);
    if let Some(logits) = &found.logits_value {
        expose(logits);
    }
    let onnx = model
        .write_to_bytes()
        .map_err(|e| Error::model(origin, format!("cannot serialize the prepared graph: {e}")))?;
    let fingerprint = crate::fsutil::sha256_bytes(
        &[onnx.as_slice(), b"\0", found.feature_node.as_bytes()].concat(),
    );
    Ok(PreparedModel {
        name: name.to_owned(),
        onnx,
        input_name,
        feature_output: found.feature_value,
        feature_node: found.feature_node,
        layout: found.layout,
        reason: found.reason,
        head: found.head,
        feature_shape,
        logits_output: found.logits_value,
        original_classes: found.classifier.as_ref().map(|c| c.classes),
        classifier: found.classifier,
        class_names: None,
        preprocess: Preprocess::torchvision(size),
        external,
        fingerprint,
    })
}

/// The image input's name and side: the first non-initializer input, which must be a float
/// tensor of rank 4 (`[N, 3, H, W]`, square when static).
fn image_input(view: &GraphView) -> std::result::Result<(String, Option<usize>), String> {
    let inputs = view.real_inputs();
    let input = inputs.first().ok_or("the graph has no input")?;
    let Some(type_proto::Value::TensorType(t)) =
        input.type_.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("input `{}` is not a tensor", input.name));
    };
    if t.elem_type != dtype::FLOAT {
        return Err(format!(
            "input `{}` has element type {}, expected float images",
            input.name, t.elem_type
        ));
    }
    let Some(shape) = t.shape.as_ref() else {
        return Ok((input.name.clone(), None));
    };
    let dims: Vec<Option<i64>> = shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => {
                Some(v)
            }
            _ => None,
        })
        .collect();
    match dims[..] {
        [_, c, h, w] => {
            if c.is_some_and(|c| c != 3) {
                return Err(format!(
                    "input `{}` has {} channels, expected RGB images [N,3,H,W]",
                    input.name,
                    c.unwrap_or(0)
                ));
            }
            match (h, w) {
                (Some(h), Some(w)) if h != w => Err(format!(
                    "input `{}` is {h}×{w}; only square inputs are supported",
                    input.name
                )),
                (Some(h), _) | (_, Some(h)) => Ok((input.name.clone(), Some(h as usize))),
                (None, None) => Ok((input.name.clone(), None)),
            }
        }
        _ => Err(format!(
            "input `{}` has rank {}, expected an image batch [N,3,H,W]",
            input.name,
            dims.len()
        )),
    }
}

/// A graph input or output as `inspect` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Port {
    /// Value name.
    pub name: String,
    /// Dims as written in the graph: numbers, symbolic names, or empty when unknown.
    pub shape: Vec<String>,
    /// What this crate uses the output for: `features`, `logits`, or empty.
    pub role: String,
}

/// What `infodisent inspect` reports about a prepared model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// Model name.
    pub name: String,
    /// Number of graph nodes.
    pub nodes: usize,
    /// Real graph inputs.
    pub inputs: Vec<Port>,
    /// Graph outputs, including the ones exposed for feature extraction.
    pub outputs: Vec<Port>,
    /// Node (or value) the features come from.
    pub feature_node: String,
    /// Why that map was chosen.
    pub reason: String,
    /// Layout of that value.
    pub layout: crate::onnx::model::FeatureLayout,
    /// What the model does with the pooled map.
    pub head: crate::onnx::model::OriginalHead,
    /// Number of classes of the model's own logits, when it outputs any.
    pub original_classes: Option<usize>,
    /// Whether the graph runs only one image per call (its batch size fixed to 1).
    pub one_at_a_time: bool,
    /// Folder external tensor data is read from, when the model has any.
    pub external_data: Option<std::path::PathBuf>,
    /// Per-image feature map [D, h, w] (zeros when unknown without a run).
    pub feature_shape: [usize; 3],
    /// Original classifier as [classes, dim].
    pub classifier: Option<[usize; 2]>,
    /// Preprocessing preset.
    pub preprocess: Preprocess,
    /// Forward FLOPs per image, when every heavy node's shape is known.
    pub flops: Option<f64>,
    /// Why the FLOPs are unknown, if they are.
    pub flops_error: Option<String>,
    /// Fingerprint used by feature caches.
    pub fingerprint: String,
}

/// Summarises a loaded model's graph and what detection and the probe run found
/// (`one_at_a_time`: the engine's probe found the graph runs one image per call).
pub fn inspect(model: &PreparedModel, one_at_a_time: bool) -> Result<Inspection> {
    let proto = parse(&model.onnx, Path::new(&model.name))?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::model(&model.name, "the model has no graph"))?;
    let view = GraphView::new(graph, model.external.as_ref());
    let inferred = shapes::infer(&view, 1, model.preprocess.crop);
    let port = |vi: &onnx_protobuf::ValueInfoProto| {
        let shape = match vi.type_.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => t.shape.as_ref().map_or_else(Vec::new, |s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                            v.to_string()
                        }
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimParam(p)) => {
                            p.clone()
                        }
                        _ => "?".to_owned(),
                    })
                    .collect()
            }),
            _ => Vec::new(),
        };
        // Outputs added for extraction carry no shape in the graph: show the propagated one.
        let shape = match (shape.is_empty(), inferred.get(&vi.name)) {
            (true, Some(dims)) => std::iter::once("batch".to_owned())
                .chain(dims.iter().skip(1).map(usize::to_string))
                .collect(),
            _ => shape,
        };
        let role = if vi.name == model.feature_output {
            "features"
        } else if model.logits_output.as_deref() == Some(vi.name.as_str()) {
            "logits"
        } else {
            ""
        };
        Port {
            name: vi.name.clone(),
            shape,
            role: role.to_owned(),
        }
    };
    let (flops, flops_error) = match count_flops(model, 1) {
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Inspection {
        name: model.name.clone(),
        nodes: graph.node.len(),
        inputs: view.real_inputs().into_iter().map(port).collect(),
        outputs: graph.output.iter().map(port).collect(),
        feature_node: model.feature_node.clone(),
        reason: model.reason.clone(),
        layout: model.layout,
        head: model.head.clone(),
        original_classes: model.original_classes,
        one_at_a_time,
        external_data: model.external.as_ref().map(|e| e.dir().to_path_buf()),
        feature_shape: model.feature_shape,
        classifier: model.classifier.as_ref().map(|c| [c.classes, c.dim]),
        preprocess: model.preprocess.clone(),
        flops,
        flops_error,
        fingerprint: model.fingerprint.clone(),
    })
}
