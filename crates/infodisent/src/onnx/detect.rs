//! Finding what a classifier pools: the last spatial feature map (CNNs) or the final token grid
//! (ViTs), and what the model does with the pooled vector: a linear layer (possibly after a
//! LayerNorm, as ConvNeXt, Swin and mean-pooled ViTs have), or something else whose logits are
//! then only taken from the graph's own output.
//!
//! Real exporters put reshaping glue between the pool and the linear layer (`Flatten`, `Reshape`,
//! `Squeeze`, or the `Reshape`/`Gather`/`Reshape` of `as_strided` from torch's dynamo exporter),
//! so the walk from the pool follows any data-moving op, ignoring `Shape` reads of the value.

use super::build::{node_proto, Attr};
use super::graph::{attr_f, attr_i, attr_ints, node_label, GraphView};
use super::shapes::{norm_axis, Shapes};
use crate::classifier::LinearClassifier;
use crate::onnx::model::{FeatureLayout, OriginalHead, OriginalHeadKind};
use onnx_protobuf::NodeProto;

/// The graph value the per-pixel norm is written to when the head normalises after pooling.
pub const NORMED_FEATURES: &str = "infodisent_normed_features";

/// What detection found.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The value exposed as the feature output.
    pub feature_value: String,
    /// The node (or value) name reported to users and accepted by `--feature-node`.
    pub feature_node: String,
    /// How the feature value is laid out.
    pub layout: FeatureLayout,
    /// Why this map was chosen, for `inspect`.
    pub reason: String,
    /// The final linear layer, when the head is one (possibly after a per-pixel norm).
    pub classifier: Option<LinearClassifier>,
    /// What follows the pool.
    pub head: OriginalHead,
    /// The value holding the model's logits (exposed as an output if it is not one).
    pub logits_value: Option<String>,
    /// Nodes to append so the exposed map is what the linear layer reads (the head's LayerNorm
    /// applied per pixel).
    pub extra_nodes: Vec<NodeProto>,
}

/// A pooling site: where a feature map is reduced to one vector per image.
struct Pool<'g> {
    node: &'g NodeProto,
    layout: FeatureLayout,
    what: &'static str,
    class_token: bool,
}

/// Ops that only move or reshape a pooled vector on its way to the linear layer.
const PASS_THROUGH: &[&str] = &[
    "Flatten",
    "Reshape",
    "Squeeze",
    "Identity",
    "Dropout",
    "Unsqueeze",
    "Gather",
    "Transpose",
    "Cast",
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

/// A LayerNormalization between the pool and the linear layer.
enum Norm<'g> {
    /// One LayerNormalization node (opset 17 and later).
    Node(&'g NodeProto),
    /// The mean/variance ops an exporter wrote instead (older opsets), in graph order, reading
    /// `input` and producing `output`.
    Decomposed {
        input: String,
        nodes: Vec<&'g NodeProto>,
        output: String,
    },
}

impl Norm<'_> {
    fn label(&self) -> String {
        match self {
            Norm::Node(node) => node_label(node),
            Norm::Decomposed { nodes, .. } => format!(
                "{} .. {} ({} ops)",
                node_label(nodes[0]),
                node_label(nodes[nodes.len() - 1]),
                nodes.len()
            ),
        }
    }
}

/// Ops a LayerNorm decomposes into.
const NORM_OPS: &[&str] = &[
    "ReduceMean",
    "Sub",
    "Pow",
    "Mul",
    "Add",
    "Sqrt",
    "Div",
    "Reciprocal",
    "Cast",
];

/// Recognises a LayerNorm written out as ops (older opsets): starting at `value`, the nodes that
/// read it or what they compute, with only constants besides, until one value is left that the
/// rest of the graph reads. It must reduce only over the last axis, twice (mean and variance).
fn decomposed_norm<'g>(view: &GraphView<'g>, value: &str) -> Option<Norm<'g>> {
    let mut nodes: Vec<&NodeProto> = Vec::new();
    let mut produced: Vec<&str> = vec![value];
    let mut means = 0;
    for node in view.nodes() {
        if !node.input.iter().any(|i| produced.contains(&i.as_str())) {
            continue;
        }
        if !NORM_OPS.contains(&node.op_type.as_str()) || nodes.len() >= 16 {
            return None;
        }
        let inputs_ok = node
            .input
            .iter()
            .all(|i| i.is_empty() || produced.contains(&i.as_str()) || view.constant(i).is_some());
        if !inputs_ok {
            return None;
        }
        if node.op_type == "ReduceMean" {
            let axes = attr_ints(node, "axes")
                .or_else(|| node.input.get(1).and_then(|a| view.constant_i64(a)))?;
            if axes != [-1] {
                return None;
            }
            means += 1;
        }
        nodes.push(node);
        produced.extend(node.output.iter().map(String::as_str));
        let open: Vec<&str> = produced
            .iter()
            .copied()
            .filter(|v| {
                view.is_output(v)
                    || view
                        .consumers(v)
                        .iter()
                        .any(|c| !nodes.iter().any(|n| std::ptr::eq(*n, *c)))
            })
            .collect();
        if let [last] = open[..] {
            if last != value && means == 2 {
                // The scale and shift follow the normalisation itself.
                let mut output = last.to_owned();
                while let Some(affine) = data_consumer(view, &output).filter(|n| {
                    matches!(n.op_type.as_str(), "Mul" | "Add")
                        && n.input
                            .iter()
                            .any(|i| *i != output && view.constant(i).is_some())
                }) {
                    nodes.push(affine);
                    output = affine.output.first()?.clone();
                }
                return Some(Norm::Decomposed {
                    input: value.to_owned(),
                    nodes,
                    output,
                });
            }
        }
    }
    None
}

/// How the walk from a pool ended.
enum HeadWalk<'g> {
    /// A linear layer whose logits reach the graph's answer.
    Linear {
        norm: Option<Norm<'g>>,
        linear: &'g NodeProto,
        classifier: LinearClassifier,
        logits: String,
    },
    /// Anything else, with what was found.
    Other(String),
}

/// Detects the feature map and classifier. `Err` carries a message for the user.
pub fn detect(
    view: &GraphView,
    shapes: &Shapes,
    feature_node: Option<&str>,
) -> Result<Detection, String> {
    let pools = pools(view, shapes);
    let walked: Vec<(&Pool, HeadWalk)> = pools.iter().map(|p| (p, walk_head(view, p))).collect();
    let chosen = walked
        .iter()
        .rev()
        .find(|(_, w)| matches!(w, HeadWalk::Linear { .. }))
        .or_else(|| walked.last());
    let graph_logits = graph_logits(view);
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
            // The detected head reads another map; it applies to this one only when its width
            // matches, which the engine checks once the shape is known.
            let (classifier, head, logits) = match chosen {
                Some((
                    pool,
                    HeadWalk::Linear {
                        classifier,
                        logits,
                        norm,
                        linear,
                    },
                )) => (
                    Some(classifier.clone()),
                    head_of(pool, norm.as_ref(), linear, classifier, logits),
                    Some(logits.clone()),
                ),
                Some((_, HeadWalk::Other(why))) => (None, other_head(why), graph_logits),
                None => (None, missing_head(), graph_logits),
            };
            Ok(Detection {
                feature_node: wanted.to_owned(),
                feature_value: value,
                layout,
                reason: format!("`{wanted}` was asked for with --feature-node"),
                classifier,
                head,
                logits_value: logits,
                extra_nodes: Vec::new(),
            })
        }
        None => {
            let (pool, walk) = chosen.ok_or_else(|| {
                format!(
                    "found no global pooling (GlobalAveragePool, ReduceMean over the map, full-map \
                     AveragePool) or class-token selection to take features from; {}",
                    candidates_message(view, shapes)
                )
            })?;
            let map = pool.node.input[0].clone();
            let feature_node = view
                .producer(&map)
                .map_or_else(|| map.clone(), |(_, n)| node_label(n));
            let mut reason = format!(
                "input of {} `{}` ({})",
                pool.node.op_type,
                node_label(pool.node),
                pool.what
            );
            let mut detection = Detection {
                feature_value: map.clone(),
                feature_node,
                layout: pool.layout,
                reason: String::new(),
                classifier: None,
                head: missing_head(),
                logits_value: graph_logits,
                extra_nodes: Vec::new(),
            };
            match walk {
                HeadWalk::Linear {
                    norm,
                    linear,
                    classifier,
                    logits,
                } => {
                    reason.push_str(&format!(
                        ", whose result reaches {} `{}` and then the model's output",
                        linear.op_type,
                        node_label(linear)
                    ));
                    if let Some(norm) = norm {
                        let (value, layout, nodes) = normed_map(&map, pool.layout, norm);
                        detection.feature_value = value;
                        detection.layout = layout;
                        detection.extra_nodes = nodes;
                        reason.push_str(&format!(
                            "; the head's LayerNorm `{}` is applied per pixel",
                            norm.label()
                        ));
                    }
                    detection.head = head_of(pool, norm.as_ref(), linear, classifier, logits);
                    detection.classifier = Some(classifier.clone());
                    detection.logits_value = Some(logits.clone());
                }
                HeadWalk::Other(why) => detection.head = other_head(why),
            }
            detection.reason = reason;
            Ok(detection)
        }
    }
}

fn head_of(
    pool: &Pool,
    norm: Option<&Norm>,
    linear: &NodeProto,
    c: &LinearClassifier,
    logits: &str,
) -> OriginalHead {
    let shape = format!(
        "{} `{}` [{} × {}]",
        linear.op_type,
        node_label(linear),
        c.classes,
        c.dim
    );
    match norm {
        None if pool.class_token => OriginalHead {
            kind: OriginalHeadKind::ClassToken,
            detail: format!("{shape} on the class token, logits `{logits}`"),
        },
        Some(n) => OriginalHead {
            kind: OriginalHeadKind::NormLinear,
            detail: format!("LayerNorm `{}` then {shape}, logits `{logits}`", n.label()),
        },
        None => OriginalHead {
            kind: OriginalHeadKind::Linear,
            detail: format!("{shape}, logits `{logits}`"),
        },
    }
}

fn other_head(why: &str) -> OriginalHead {
    OriginalHead {
        kind: OriginalHeadKind::Other,
        detail: format!(
            "{why}; the model's own logits are still cached, but CAM and the original-head \
             baseline need a single linear layer"
        ),
    }
}

fn missing_head() -> OriginalHead {
    OriginalHead {
        kind: OriginalHeadKind::Missing,
        detail: "no pooled classifier found".to_owned(),
    }
}

/// The model's answer as the graph gives it: its first output (the engine drops it when a run
/// shows it is not `[N, C]`).
fn graph_logits(view: &GraphView) -> Option<String> {
    view.graph.output.first().map(|o| o.name.clone())
}

/// Nodes applying the head's LayerNorm per pixel to `map`: NCHW maps are first moved to NHWC
/// (the norm runs over the last axis), tokens and NHWC maps are normalised as they are. A
/// decomposed norm is copied op for op, reading the map instead of the pooled vector.
fn normed_map(
    map: &str,
    layout: FeatureLayout,
    norm: &Norm,
) -> (String, FeatureLayout, Vec<NodeProto>) {
    let mut nodes = Vec::new();
    let (input, layout) = match layout {
        FeatureLayout::Nchw => {
            let moved = format!("{NORMED_FEATURES}_nhwc");
            nodes.push(node_proto(
                "Transpose",
                &moved,
                &[map],
                &moved,
                vec![("perm", Attr::Ints(vec![0, 2, 3, 1]))],
            ));
            (moved, FeatureLayout::Nhwc)
        }
        other => (map.to_owned(), other),
    };
    match norm {
        Norm::Node(node) => {
            let mut inputs: Vec<&str> = vec![&input];
            inputs.extend(node.input.iter().skip(1).map(String::as_str));
            nodes.push(node_proto(
                "LayerNormalization",
                NORMED_FEATURES,
                &inputs,
                NORMED_FEATURES,
                vec![
                    ("axis", Attr::Int(-1)),
                    ("epsilon", Attr::Float(attr_f(node, "epsilon", 1e-5))),
                ],
            ));
        }
        Norm::Decomposed {
            input: pooled,
            nodes: ops,
            output,
        } => {
            let rename = |v: &String| {
                if v == pooled {
                    input.clone()
                } else if v == output {
                    NORMED_FEATURES.to_owned()
                } else if ops.iter().any(|n| n.output.contains(v)) {
                    format!("{NORMED_FEATURES}/{v}")
                } else {
                    v.clone()
                }
            };
            for op in ops {
                let mut copy = (*op).clone();
                copy.name = format!("{NORMED_FEATURES}/{}", node_label(op));
                copy.input = copy.input.iter().map(rename).collect();
                copy.output = copy.output.iter().map(rename).collect();
                nodes.push(copy);
            }
        }
    }
    (NORMED_FEATURES.to_owned(), layout, nodes)
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
            let (layout, what) = match node.op_type.as_str() {
                "GlobalAveragePool" => (FeatureLayout::Nchw, "global average over H, W"),
                "ReduceMean" => {
                    let axes = attr_ints(node, "axes")
                        .or_else(|| node.input.get(1).and_then(|a| view.constant_i64(a)))?;
                    let r = rank(x).unwrap_or(if axes.len() == 1 { 3 } else { 4 });
                    let mut axes: Vec<usize> = axes
                        .iter()
                        .map(|&a| norm_axis(a, r))
                        .collect::<Option<_>>()?;
                    axes.sort_unstable();
                    match (r, axes.as_slice()) {
                        (4, [2, 3]) => (FeatureLayout::Nchw, "mean over H, W of an NCHW map"),
                        (4, [1, 2]) => (FeatureLayout::Nhwc, "mean over H, W of an NHWC map"),
                        (3, [1]) => (FeatureLayout::Tokens { skip: 0 }, "mean over tokens"),
                        _ => return None,
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
                    (FeatureLayout::Nchw, "average over the whole map")
                }
                "Gather" if attr_i(node, "axis", 0) == 1 && rank(x).unwrap_or(3) == 3 => {
                    let idx = view.constant_i64(node.input.get(1)?)?;
                    if idx != [0] {
                        return None;
                    }
                    (
                        FeatureLayout::Tokens {
                            skip: shapes.get(x).map_or(1, |s| token_skip(s[1])),
                        },
                        "class token",
                    )
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
                    (
                        FeatureLayout::Tokens {
                            skip: shapes.get(x).map_or(1, |s| token_skip(s[1])),
                        },
                        "class token",
                    )
                }
                _ => return None,
            };
            let class_token = what == "class token";
            Some(Pool {
                node,
                layout,
                what,
                class_token,
            })
        })
        .collect()
}

/// The one node that reads `value` as data: `Shape` reads are not uses of the values.
fn data_consumer<'g>(view: &GraphView<'g>, value: &str) -> Option<&'g NodeProto> {
    let mut readers = view
        .consumers(value)
        .into_iter()
        .filter(|n| n.op_type != "Shape");
    match (readers.next(), readers.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// Follows a pool's output through data movement to a linear layer and on to the output.
fn walk_head<'g>(view: &GraphView<'g>, pool: &Pool<'g>) -> HeadWalk<'g> {
    let Some(mut value) = pool.node.output.first().cloned() else {
        return HeadWalk::Other("the pool has no output".to_owned());
    };
    let mut norm = None;
    let linear = loop {
        if norm.is_none() && data_consumer(view, &value).is_none() {
            if let Some(found @ Norm::Decomposed { .. }) = decomposed_norm(view, &value) {
                if let Norm::Decomposed { output, .. } = &found {
                    value = output.clone();
                }
                norm = Some(found);
                continue;
            }
        }
        let Some(node) = data_consumer(view, &value) else {
            let n = view.consumers(&value).len();
            return HeadWalk::Other(if view.is_output(&value) {
                "the pooled vector is itself the output (no classifier)".to_owned()
            } else {
                format!("the pooled vector `{value}` is read by {n} nodes, not by one classifier")
            });
        };
        if node.input.first() != Some(&value) {
            return HeadWalk::Other(format!(
                "the pooled vector enters {} `{}` as a parameter",
                node.op_type,
                node_label(node)
            ));
        }
        match node.op_type.as_str() {
            op if PASS_THROUGH.contains(&op) => {}
            "LayerNormalization" if norm.is_none() => norm = Some(Norm::Node(node)),
            "Gemm" | "MatMul" | "Conv" => break node,
            op => {
                return HeadWalk::Other(format!(
                    "the pooled vector goes through {op} `{}` before any linear layer",
                    node_label(node)
                ))
            }
        }
        let Some(out) = node.output.first() else {
            return HeadWalk::Other(format!("{} has no output", node_label(node)));
        };
        value = out.clone();
    };
    let Some((classifier, mut logits)) = linear_layer(view, linear) else {
        return HeadWalk::Other(format!(
            "{} `{}` after the pool has no constant weights of a linear layer",
            linear.op_type,
            node_label(linear)
        ));
    };
    while let Some(next) =
        data_consumer(view, &logits).filter(|n| PASS_THROUGH.contains(&n.op_type.as_str()))
    {
        match next.output.first() {
            Some(out) => logits = out.clone(),
            None => break,
        }
    }
    // A pool feeding a linear layer inside the network (squeeze-excitation) is not the head: the
    // head's output is the graph's answer, possibly through a softmax or arg-max.
    let consumers = view.consumers(&logits);
    let ends = view.is_output(&logits)
        || !consumers.is_empty()
            && consumers
                .iter()
                .all(|n| HEAD_TAILS.contains(&n.op_type.as_str()));
    if !ends {
        let next = consumers
            .iter()
            .map(|n| format!("{} `{}`", n.op_type, node_label(n)))
            .collect::<Vec<_>>()
            .join(", ");
        return HeadWalk::Other(format!(
            "the linear layer {} `{}` [{} × {}] after the pool feeds {next}: the head is not a \
             single linear layer",
            linear.op_type,
            node_label(linear),
            classifier.classes,
            classifier.dim
        ));
    }
    HeadWalk::Linear {
        norm,
        linear,
        classifier,
        logits,
    }
}

/// Reads a linear layer (Gemm, MatMul[+Add], or a 1×1 Conv) with constant weights.
fn linear_layer(view: &GraphView, node: &NodeProto) -> Option<(LinearClassifier, String)> {
    let out = node.output.first()?.clone();
    match node.op_type.as_str() {
        "Gemm" => {
            // transA only says how the pooled input is laid out; the weights read the same.
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
            let add = data_consumer(view, &out).filter(|n| n.op_type == "Add");
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
