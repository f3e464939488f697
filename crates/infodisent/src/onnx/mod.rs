//! Any ONNX image classifier as a feature extractor: parse the model, find the last spatial feature
//! map it pools and its final linear layer, and expose the feature map as an extra graph output
//! so one run yields both features and the original logits.

pub mod build;
pub mod detect;
pub mod flops;
pub mod graph;
pub mod shapes;

pub use flops::count_flops;

use crate::error::{Error, Result};
use crate::model::PreparedModel;
use crate::preprocess::Preprocess;
use graph::{dtype, GraphView};
use onnx_protobuf::{type_proto, ModelProto};
use protobuf::Message;
use std::path::Path;

/// The image side assumed when the graph's input size is symbolic.
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

/// Reads an `.onnx` file and prepares it (see [`prepare`]).
pub fn prepare_file(path: &Path, feature_node: Option<&str>) -> Result<PreparedModel> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let model = parse(&bytes, path)?;
    let name = path
        .file_stem()
        .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned());
    prepare(model, path, &name, feature_node)
}

/// Finds the feature map (or takes `feature_node`, a node or value name) and the classifier of
/// `model`, adds the feature map (and logits, if internal) as graph outputs and serializes the
/// result. Preprocessing defaults to the torchvision convention (ImageNet mean/std, resize = 256/224 × crop); callers with
/// better knowledge (the built-ins) overwrite it.
pub fn prepare(
    mut model: ModelProto,
    origin: &Path,
    name: &str,
    feature_node: Option<&str>,
) -> Result<PreparedModel> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::model(origin, "the model has no graph"))?;
    let view = GraphView::new(graph);
    let (input_name, size) = image_input(&view).map_err(|msg| Error::model(origin, msg))?;
    let shapes = shapes::infer(&view, 1, size);
    let found =
        detect::detect(&view, &shapes, feature_node).map_err(|msg| Error::model(origin, msg))?;
    let feature_shape = match (shapes.get(&found.feature_value), found.layout) {
        (Some(&[_, d, h, w]), crate::model::FeatureLayout::Nchw) => [d, h, w],
        (Some(&[_, t, d]), crate::model::FeatureLayout::Tokens { skip }) => {
            let side = ((t - skip) as f64).sqrt().round() as usize;
            if side * side == t - skip {
                [d, side, side]
            } else {
                [0, 0, 0]
            }
        }
        _ => [0, 0, 0],
    };
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| Error::model(origin, "the model has no graph"))?;
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
        feature_shape,
        logits_output: found.logits_value,
        classifier: found.classifier,
        class_names: None,
        preprocess: Preprocess::torchvision(size),
        fingerprint,
    })
}

/// The image input's name and side: the first non-initializer input, which must be a float
/// tensor of rank 4 (`[N, 3, H, W]`, square when static).
fn image_input(view: &GraphView) -> std::result::Result<(String, usize), String> {
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
        return Ok((input.name.clone(), DEFAULT_INPUT_SIZE));
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
                (Some(h), _) | (_, Some(h)) => Ok((input.name.clone(), h as usize)),
                (None, None) => Ok((input.name.clone(), DEFAULT_INPUT_SIZE)),
            }
        }
        _ => Err(format!(
            "input `{}` has rank {}, expected an image batch [N,3,H,W]",
            input.name,
            dims.len()
        )),
    }
}
