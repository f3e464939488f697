//! Finding what a classifier pools: the last spatial feature map (CNNs) or the final token grid
//! (ViTs), and the linear layer that turns the pooled vector into logits.

use super::graph::{attr_f, attr_i, attr_ints, node_label, GraphView};
use super::shapes::{norm_axis, Shapes};
use crate::classifier::LinearClassifier;
use crate::model::FeatureLayout;
use onnx_protobuf::NodeProto;

/// What detection found.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The value exposed as the feature output.
    pub feature_value: String,
    /// The node (or value) name reported to users and accepted by `--feature-node`.
    pub feature_node: String,
    /// How the feature value is laid out.
    pub layout: FeatureLayout,
    /// The final linear layer, when it could be read.
    pub classifier: Option<LinearClassifier>,
    /// The value holding the classifier's logits (exposed as an output if it is not one).
    pub logits_value: Option<String>,
}

/// A pooling site: where a feature map is reduced to one vector per image.
struct Pool<'g> {
    node: &'g NodeProto,
    layout: FeatureLayout,
}

/// Ops that only reshape a pooled vector on its way to the linear layer.
const PASS_THROUGH: &[&str] = &[
    "Flatten",
    "Reshape",
    "Squeeze",
    "Identity",
    "Dropout",
    "Unsqueeze",
];

/// Ops that may follow the logits at the very end of a classifier.
const HEAD_TAILS: &[&str] = &["Softmax", "LogSoftmax", "ArgMax", "TopK", "Sigmoid"];

/// Ops whose 3-D/4-D outputs are worth suggesting as `--feature-node`.
const SPATIAL_OPS: &[&str] = &[
    "Conv",
    "Relu",
    "Clip",
    "BatchNormalization",
    "Add",
    "Mul",
    "Sigmoid",
    "HardSwish",
    "MaxPool",
    "Concat",
    "LayerNormalization",
    "Gelu",
    "Silu",
    "Swish",
    "Elu",
    "LeakyRelu",
    "PRelu",
    "Div",
];

/// Detects the feature map and classifier. `Err` carries a message for the user.
pub fn detect(
    view: &GraphView,
    shapes: &Shapes,
    feature_node: Option<&str>,
) -> Result<Detection, String> {
    let pools = pools(view, shapes);
    let with_head = pools
        .iter()
        .rev()
        .find_map(|p| follow_head(view, p).map(|head| (p, head)));
    let auto = with_head
        .map(|(p, (c, l))| (p, Some(c), Some(l)))
        .or_else(|| pools.last().map(|p| (p, None, None)));
    match feature_node {
        Some(wanted) => {
            let value = resolve(view, wanted).ok_or_else(|| {
                format!(
                    "the graph has no node or value named `{wanted}`; {}",
                    candidates_message(view, shapes)
                )
            })?;
            let layout = match shapes.get(&value).map(<[usize]>::len) {
                Some(3) => FeatureLayout::Tokens {
                    skip: token_skip(shapes.get(&value).map_or(0, |s| s[1])),
                },
                Some(4) | None => FeatureLayout::Nchw,
                Some(r) => {
                    return Err(format!(
                    "`{wanted}` has rank {r}; a feature map must be [N,D,h,w] or tokens [N,T,D]"
                ))
                }
            };
            let (classifier, logits_value) = auto.map_or((None, None), |(_, c, l)| (c, l));
            Ok(Detection {
                feature_node: wanted.to_owned(),
                feature_value: value,
                layout,
                classifier,
                logits_value,
            })
        }
        None => {
            let (pool, classifier, logits_value) = auto.ok_or_else(|| {
                format!(
                    "found no global pooling (GlobalAveragePool, spatial ReduceMean, full-map AveragePool) or \
                     class-token selection to take features from; {}",
                    candidates_message(view, shapes)
                )
            })?;
            let feature_value = pool.node.input[0].clone();
            let feature_node = view
                .producer(&feature_value)
                .map_or_else(|| feature_value.clone(), |(_, n)| node_label(n));
            Ok(Detection {
                feature_value,
                feature_node,
                layout: pool.layout,
                classifier,
                logits_value,
            })
        }
    }
}

/// The number of leading tokens to drop so that the rest forms a square grid (class, register or
/// distillation tokens).
pub fn token_skip(tokens: usize) -> usize {
    let side = ((tokens.saturating_sub(1)) as f64).sqrt().floor() as usize;
    tokens - side * side
}

/// A node name or a value name, as the produced value.
fn resolve(view: &GraphView, wanted: &str) -> Option<String> {
    if let Some(node) = view.nodes().iter().find(|n| n.name == wanted) {
        return node.output.first().cloned();
    }
    view.producer(wanted).map(|_| wanted.to_owned())
}

/// Every pooling site, in graph order.
fn pools<'g>(view: &GraphView<'g>, shapes: &Shapes) -> Vec<Pool<'g>> {
    let rank = |v: &str| shapes.get(v).map(<[usize]>::len);
    view.nodes()
        .iter()
        .filter_map(|node| {
            let x = node.input.first()?;
            let layout = match node.op_type.as_str() {
                "GlobalAveragePool" => FeatureLayout::Nchw,
                "ReduceMean" => {
                    let r = rank(x).unwrap_or(4);
                    let axes = attr_ints(node, "axes")
                        .or_else(|| node.input.get(1).and_then(|a| view.constant_i64(a)))?;
                    let mut axes: Vec<usize> = axes
                        .iter()
                        .map(|&a| norm_axis(a, r))
                        .collect::<Option<_>>()?;
                    axes.sort_unstable();
                    if r == 4 && axes == [2, 3] {
                        FeatureLayout::Nchw
                    } else if r == 3 && axes == [1] {
                        FeatureLayout::Tokens { skip: 0 }
                    } else {
                        return None;
                    }
                }
                "AveragePool" => {
                    let x_shape = shapes.get(x)?;
                    let k = attr_ints(node, "kernel_shape")?;
                    let pads = attr_ints(node, "pads").unwrap_or_default();
                    let whole = x_shape.len() == 4
                        && k.len() == 2
                        && k[0] as usize == x_shape[2]
                        && k[1] as usize == x_shape[3];
                    if !whole || pads.iter().any(|&p| p != 0) {
                        return None;
                    }
                    FeatureLayout::Nchw
                }
                "Gather" if attr_i(node, "axis", 0) == 1 && rank(x).unwrap_or(3) == 3 => {
                    let idx = view.constant_i64(node.input.get(1)?)?;
                    if idx != [0] {
                        return None;
                    }
                    FeatureLayout::Tokens {
                        skip: shapes.get(x).map_or(1, |s| token_skip(s[1])),
                    }
                }
                "Slice" if rank(x).unwrap_or(3) == 3 => {
                    let starts = view.constant_i64(node.input.get(1)?)?;
                    let ends = view.constant_i64(node.input.get(2)?)?;
                    let axes = node
                        .input
                        .get(3)
                        .and_then(|a| view.constant_i64(a))
                        .unwrap_or_else(|| vec![0]);
                    if starts != [0] || ends != [1] || norm_axis(*axes.first()?, 3) != Some(1) {
                        return None;
                    }
                    FeatureLayout::Tokens {
                        skip: shapes.get(x).map_or(1, |s| token_skip(s[1])),
                    }
                }
                _ => return None,
            };
            Some(Pool { node, layout })
        })
        .collect()
}

/// The single consumer of `value`, if exactly one node reads it.
fn only_consumer<'g>(view: &GraphView<'g>, value: &str) -> Option<&'g NodeProto> {
    match view.consumers(value).as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

/// Follows a pool's output through reshapes to a linear layer; returns it and its logits value.
fn follow_head(view: &GraphView, pool: &Pool) -> Option<(LinearClassifier, String)> {
    let mut value = pool.node.output.first()?.clone();
    let mut node = only_consumer(view, &value)?;
    while PASS_THROUGH.contains(&node.op_type.as_str()) {
        value = node.output.first()?.clone();
        node = only_consumer(view, &value)?;
    }
    if node.input.first() != Some(&value) {
        return None;
    }
    let (classifier, mut logits) = linear(view, node)?;
    while let Some(next) =
        only_consumer(view, &logits).filter(|n| PASS_THROUGH.contains(&n.op_type.as_str()))
    {
        logits = next.output.first()?.clone();
    }
    // A pool feeding a linear layer inside the network (squeeze-excitation) is not the head: the
    // head's output is the graph's answer, possibly through a softmax or arg-max.
    let ends = view.is_output(&logits)
        || view
            .consumers(&logits)
            .iter()
            .all(|n| HEAD_TAILS.contains(&n.op_type.as_str()))
            && !view.consumers(&logits).is_empty();
    ends.then_some((classifier, logits))
}

/// Reads a linear layer (Gemm, MatMul[+Add], or a 1×1 Conv) with constant weights.
fn linear(view: &GraphView, node: &NodeProto) -> Option<(LinearClassifier, String)> {
    let out = node.output.first()?.clone();
    match node.op_type.as_str() {
        "Gemm" => {
            if attr_i(node, "transA", 0) != 0 {
                return None;
            }
            let (dims, w) = view.constant_f32(node.input.get(1)?)?;
            let [r, c] = dims[..] else { return None };
            let alpha = attr_f(node, "alpha", 1.0);
            let beta = attr_f(node, "beta", 1.0);
            let (classes, dim, weight) = if attr_i(node, "transB", 0) != 0 {
                (r, c, w)
            } else {
                (c, r, transpose(&w, r, c))
            };
            let weight = weight.iter().map(|v| v * alpha).collect();
            let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
                Some(b) => bias_vector(view.constant_f32(b)?.1, classes)?
                    .iter()
                    .map(|v| v * beta)
                    .collect(),
                None => vec![0.0; classes],
            };
            LinearClassifier::new(classes, dim, weight, bias)
                .ok()
                .map(|c| (c, out))
        }
        "MatMul" => {
            let (dims, w) = view.constant_f32(node.input.get(1)?)?;
            let [dim, classes] = dims[..] else {
                return None;
            };
            let weight = transpose(&w, dim, classes);
            let add = only_consumer(view, &out).filter(|n| n.op_type == "Add");
            let bias_and_out = add.and_then(|a| {
                let other = a.input.iter().find(|i| **i != out)?;
                Some((
                    bias_vector(view.constant_f32(other)?.1, classes)?,
                    a.output.first()?.clone(),
                ))
            });
            let (bias, out) = bias_and_out.unwrap_or((vec![0.0; classes], out));
            LinearClassifier::new(classes, dim, weight, bias)
                .ok()
                .map(|c| (c, out))
        }
        "Conv" => {
            let (dims, w) = view.constant_f32(node.input.get(1)?)?;
            let [classes, dim, 1, 1] = dims[..] else {
                return None;
            };
            if attr_i(node, "group", 1) != 1 {
                return None;
            }
            let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
                Some(b) => bias_vector(view.constant_f32(b)?.1, classes)?,
                None => vec![0.0; classes],
            };
            LinearClassifier::new(classes, dim, w, bias)
                .ok()
                .map(|c| (c, out))
        }
        _ => None,
    }
}

fn bias_vector(values: Vec<f32>, classes: usize) -> Option<Vec<f32>> {
    match values.len() {
        n if n == classes => Some(values),
        1 => Some(vec![values[0]; classes]),
        _ => None,
    }
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// "candidates: ..." listing the last nodes whose outputs look like feature maps.
pub fn candidates_message(view: &GraphView, shapes: &Shapes) -> String {
    let found = candidates(view, shapes);
    if found.is_empty() {
        "the graph has no convolution or token output to suggest".to_owned()
    } else {
        format!(
            "pass --feature-node with one of these candidates (last first): {}",
            found.join(", ")
        )
    }
}

/// Up to eight nodes near the end whose output is a 4-D map or 3-D tokens (when shapes are known).
pub fn candidates(view: &GraphView, shapes: &Shapes) -> Vec<String> {
    view.nodes()
        .iter()
        .rev()
        .filter(|n| SPATIAL_OPS.contains(&n.op_type.as_str()))
        .filter_map(|n| {
            let out = n.output.first()?;
            match shapes.get(out) {
                Some(s) if s.len() == 4 || s.len() == 3 => {
                    Some(format!("{} ({}, {:?})", node_label(n), n.op_type, s))
                }
                Some(_) => None,
                None => Some(format!("{} ({})", node_label(n), n.op_type)),
            }
        })
        .take(8)
        .collect()
}
