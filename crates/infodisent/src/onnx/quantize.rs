//! Post-training static int8 quantization of the backbone part of a graph, for an opt-in faster
//! extraction. The graph gets QuantizeLinear/DequantizeLinear pairs in the layout ONNX Runtime's
//! QDQ fusion turns into integer kernels (`QLinearConv`, `QLinearAdd`, int8 `MaxPool`):
//! activations as per-tensor uint8 with ranges calibrated on real images, Conv weights as
//! per-output-channel symmetric int8, biases as int32 at the product scale. A Relu or
//! Clip(0, ·) after a Conv or Add is folded into the quantization of its input (the uint8 range
//! starts at 0, so clamping does its work), as ONNX Runtime's own quantizer does.
//!
//! Only what lies before the feature map is quantized, and the feature map itself stays a float
//! output: the cached features carry the int8 layers' error but no rounding of their own.

use super::build::node_proto;
use super::graph::{dtype, GraphView};
use super::model::PreparedModel;
use crate::error::{Error, Result};
use onnx_protobuf::{ModelProto, NodeProto, TensorProto};
use protobuf::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

const UINT8: i32 = 2;
const INT8: i32 = 3;
/// Weights use 7 bits: on x86 CPUs without VNNI, ONNX Runtime multiplies uint8 by int8 with
/// VPMADDUBSW, whose int16 pair sums saturate on full-range weights (its documented caveat;
/// measured here: 0.54 relative feature error on Lite0 at 8 bits).
const WEIGHT_MAX: f32 = 63.0;

/// Ops with integer kernels behind ONNX Runtime's QDQ fusion.
fn has_int8_kernel(node: &NodeProto, view: &GraphView) -> bool {
    match node.op_type.as_str() {
        "Conv" => node
            .input
            .get(1)
            .and_then(|w| view.constant(w))
            .is_some_and(|w| w.data_type == dtype::FLOAT && w.dims.len() == 4),
        "Add" => node.input.len() == 2 && node.input.iter().all(|v| view.constant(v).is_none()),
        "MaxPool" => node.output.len() == 1,
        _ => false,
    }
}

/// One quantized activation.
#[derive(Debug, Clone)]
struct Point {
    /// The value whose calibrated range sets the scale; consumers read its dequantized copy.
    value: String,
    /// What the QuantizeLinear reads: `value`, or the input of the folded activation.
    source: String,
    /// Index of the Relu/Clip node folded away.
    folded: Option<usize>,
}

/// Where the quantized graph puts its QDQ pairs, decided from the float graph alone.
#[derive(Debug, Clone)]
pub struct QuantPlan {
    /// The float graph, parsed once for the plan, the calibration graph and the int8 graph.
    proto: ModelProto,
    points: Vec<Point>,
    /// Conv nodes whose input and output are both quantized: their weights become int8.
    int8_convs: HashSet<usize>,
    input_name: String,
}

/// An activation's calibrated range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
}

impl Range {
    /// The empty range, before any value.
    pub const EMPTY: Range = Range {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
    };

    /// Widens the range to cover `values` (NaNs are ignored).
    pub fn cover(&mut self, values: &[f32]) {
        for &v in values {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    /// uint8 scale and zero point of the range widened to hold 0 (so padding is exact).
    fn uint8(self) -> (f32, u8) {
        let lo = self.min.min(0.0);
        let hi = self.max.max(0.0);
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let zero = (-lo / scale).round().clamp(0.0, 255.0) as u8;
        (scale, zero)
    }
}

fn opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version)
}

impl QuantPlan {
    /// Plans the quantization of `model` up to its feature map; refuses graphs with nothing to
    /// quantize or too old an opset for per-channel weights.
    pub fn new(model: &PreparedModel) -> Result<QuantPlan> {
        let proto = super::parse(&model.onnx, Path::new(&model.name))?;
        let version = opset(&proto);
        if version < 13 {
            return Err(Error::model(
                &model.name,
                format!(
                    "int8 needs opset 13 or later for per-channel weights; this graph declares \
                     opset {version} (export it again with a newer opset)"
                ),
            ));
        }
        let graph = proto.graph.as_ref().expect("parse checked the graph");
        let view = GraphView::new(graph, model.external.as_ref());
        let feature = model.feature_output.as_str();
        let region = ancestors(&view, feature);
        let int8_node = |i: usize| region.contains(&i) && has_int8_kernel(&graph.node[i], &view);
        let mut points = Vec::new();
        let mut seen = HashSet::new();
        for (i, node) in graph.node.iter().enumerate() {
            if !int8_node(i) {
                continue;
            }
            let inputs = if node.op_type == "Add" { 2 } else { 1 };
            for value in node.input.iter().take(inputs) {
                if value == feature || view.is_output(value) || !seen.insert(value.clone()) {
                    continue;
                }
                if !view.consumer_indices(value).iter().all(|&c| int8_node(c)) {
                    continue;
                }
                points.push(fold(&view, value, &region));
            }
        }
        let sources: HashSet<&str> = points.iter().map(|p| p.source.as_str()).collect();
        let values: HashSet<&str> = points.iter().map(|p| p.value.as_str()).collect();
        let int8_convs: HashSet<usize> = graph
            .node
            .iter()
            .enumerate()
            .filter(|&(i, n)| {
                n.op_type == "Conv"
                    && int8_node(i)
                    && values.contains(n.input[0].as_str())
                    && sources.contains(n.output[0].as_str())
            })
            .map(|(i, _)| i)
            .collect();
        if int8_convs.is_empty() {
            return Err(Error::model(
                &model.name,
                "int8 found no convolution with constant weights before the feature map to \
                 quantize (only convolutional backbones have integer kernels here)",
            ));
        }
        Ok(QuantPlan {
            proto,
            points,
            int8_convs,
            input_name: model.input_name.clone(),
        })
    }

    /// Layers that will run on integer kernels.
    pub fn int8_convs(&self) -> usize {
        self.int8_convs.len()
    }

    /// The values whose ranges calibration must measure (the graph input's comes from the
    /// images themselves).
    pub fn calibrated_values(&self) -> Vec<&str> {
        self.points
            .iter()
            .map(|p| p.value.as_str())
            .filter(|v| *v != self.input_name)
            .collect()
    }

    /// The float graph with every calibrated value as an extra output.
    pub fn calibration_model(&self, model: &PreparedModel) -> Result<Vec<u8>> {
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().expect("parse checked the graph");
        for v in self.calibrated_values() {
            graph
                .output
                .push(super::build::value_info(v, dtype::FLOAT, None));
        }
        serialize(&proto, &model.name)
    }

    /// The QDQ graph for the measured `ranges` (one per point value; the input's included).
    pub fn quantized_model(
        &self,
        model: &PreparedModel,
        ranges: &HashMap<String, Range>,
    ) -> Result<Vec<u8>> {
        let graph = self.proto.graph.as_ref().expect("parse checked the graph");
        let view = GraphView::new(graph, model.external.as_ref());
        let mut init: Vec<TensorProto> = Vec::new();
        let mut qparams: HashMap<&str, (f32, u8)> = HashMap::new();
        for p in &self.points {
            let range = ranges.get(&p.value).copied().ok_or_else(|| {
                Error::model(
                    &model.name,
                    format!("no calibrated range for `{}`", p.value),
                )
            })?;
            if !(range.min.is_finite() && range.max.is_finite()) {
                return Err(Error::model(
                    &model.name,
                    format!(
                        "calibration saw no finite value of `{}` (NaN or infinite activations)",
                        p.value
                    ),
                ));
            }
            let (scale, zero) = range.uint8();
            init.push(tensor_dims(
                &format!("{}_scale", p.value),
                dtype::FLOAT,
                &[],
                bytes_f32(&[scale]),
            ));
            init.push(tensor_dims(
                &format!("{}_zero", p.value),
                UINT8,
                &[],
                vec![zero],
            ));
            qparams.insert(&p.value, (scale, zero));
        }
        let dq = |v: &str| format!("{v}_dq");
        let renamed: HashMap<&str, String> = self
            .points
            .iter()
            .map(|p| (p.value.as_str(), dq(&p.value)))
            .collect();
        let by_source: HashMap<&str, &Point> =
            self.points.iter().map(|p| (p.source.as_str(), p)).collect();
        let folded: HashSet<usize> = self.points.iter().filter_map(|p| p.folded).collect();
        let qdq = |p: &Point| -> [NodeProto; 2] {
            let (v, s, z) = (
                &p.value,
                format!("{}_scale", p.value),
                format!("{}_zero", p.value),
            );
            [
                node_proto(
                    "QuantizeLinear",
                    &format!("{v}_quantize"),
                    &[&p.source, &s, &z],
                    &format!("{v}_q"),
                    vec![],
                ),
                node_proto(
                    "DequantizeLinear",
                    &format!("{v}_dequantize"),
                    &[&format!("{v}_q"), &s, &z],
                    &dq(v),
                    vec![],
                ),
            ]
        };
        let mut nodes = Vec::with_capacity(graph.node.len() * 2);
        if let Some(p) = by_source.get(self.input_name.as_str()) {
            nodes.extend(qdq(p));
        }
        for (i, node) in graph.node.iter().enumerate() {
            if folded.contains(&i) {
                continue;
            }
            let mut node = node.clone();
            for input in node.input.iter_mut() {
                if let Some(r) = renamed.get(input.as_str()) {
                    *input = r.clone();
                }
            }
            if self.int8_convs.contains(&i) {
                let x_scale = qparams[graph.node[i].input[0].as_str()].0;
                let (weights, bias) = int8_weights(&view, &graph.node[i], x_scale)
                    .map_err(|msg| Error::model(&model.name, msg))?;
                let tag = if node.name.is_empty() {
                    format!("conv{i}")
                } else {
                    node.name.clone()
                };
                let w_name = format!("{tag}_weight_int8");
                init.extend(weights.initializers(&w_name, INT8));
                nodes.push(weights.dequantize(&w_name));
                node.input[1] = dq(&w_name);
                if let Some(bias) = bias {
                    let b_name = format!("{tag}_bias_int32");
                    init.extend(bias.initializers(&b_name, dtype::INT32));
                    nodes.push(bias.dequantize(&b_name));
                    node.input[2] = dq(&b_name);
                }
            }
            let outputs = node.output.clone();
            nodes.push(node);
            for out in &outputs {
                if let Some(p) = by_source.get(out.as_str()) {
                    nodes.extend(qdq(p));
                }
            }
        }
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().expect("parse checked the graph");
        graph.node = nodes;
        graph.initializer.extend(init);
        serialize(&proto, &model.name)
    }
}

/// The nodes `value` depends on.
fn ancestors(view: &GraphView, value: &str) -> HashSet<usize> {
    let mut region = HashSet::new();
    let mut stack = vec![value.to_owned()];
    while let Some(v) = stack.pop() {
        if let Some((i, node)) = view.producer(&v) {
            if region.insert(i) {
                stack.extend(node.input.iter().filter(|x| !x.is_empty()).cloned());
            }
        }
    }
    region
}

/// The point for `value`, folding a Relu or Clip(0, ·) that only it reads from a Conv or Add.
fn fold(view: &GraphView, value: &str, region: &HashSet<usize>) -> Point {
    let plain = Point {
        value: value.to_owned(),
        source: value.to_owned(),
        folded: None,
    };
    let Some((a, act)) = view.producer(value) else {
        return plain;
    };
    let clamps_at_zero = match act.op_type.as_str() {
        "Relu" => true,
        "Clip" => act
            .input
            .get(1)
            .and_then(|m| view.constant_f32(m))
            .is_some_and(|(_, min)| min.first() == Some(&0.0)),
        _ => false,
    };
    let Some(input) = act.input.first() else {
        return plain;
    };
    let from_int8_op = view
        .producer(input)
        .is_some_and(|(p, n)| region.contains(&p) && matches!(n.op_type.as_str(), "Conv" | "Add"));
    if clamps_at_zero
        && from_int8_op
        && !view.is_output(input)
        && view.consumer_indices(input) == [a]
    {
        return Point {
            value: value.to_owned(),
            source: input.clone(),
            folded: Some(a),
        };
    }
    plain
}

/// A per-output-channel quantized constant: values, scales, and its dequantization axis 0.
struct PerChannel<T> {
    dims: Vec<i64>,
    values: Vec<T>,
    scales: Vec<f32>,
}

impl<T: bytemuck::Pod> PerChannel<T> {
    fn initializers(&self, name: &str, data_type: i32) -> [TensorProto; 3] {
        let channels = [self.scales.len() as i64];
        let zeros = vec![0u8; self.scales.len() * std::mem::size_of::<T>()];
        [
            tensor_dims(
                &format!("{name}_q"),
                data_type,
                &self.dims,
                bytemuck::cast_slice(&self.values).to_vec(),
            ),
            tensor_dims(
                &format!("{name}_scale"),
                dtype::FLOAT,
                &channels,
                bytes_f32(&self.scales),
            ),
            tensor_dims(&format!("{name}_zero"), data_type, &channels, zeros),
        ]
    }

    fn dequantize(&self, name: &str) -> NodeProto {
        node_proto(
            "DequantizeLinear",
            &format!("{name}_dequantize"),
            &[
                &format!("{name}_q"),
                &format!("{name}_scale"),
                &format!("{name}_zero"),
            ],
            &format!("{name}_dq"),
            vec![("axis", super::build::Attr::Int(0))],
        )
    }
}

/// A Conv's weights as symmetric int8 per output channel, and its bias as int32 at scale
/// `x_scale · w_scale[c]` (what the integer kernel accumulates in).
fn int8_weights(
    view: &GraphView,
    conv: &NodeProto,
    x_scale: f32,
) -> std::result::Result<(PerChannel<i8>, Option<PerChannel<i32>>), String> {
    let (dims, w) = view
        .constant_f32(&conv.input[1])
        .ok_or_else(|| format!("cannot read the weights of Conv `{}`", conv.name))?;
    let channels = dims[0];
    let per = w.len() / channels.max(1);
    let mut values = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(channels);
    for row in w.chunks(per) {
        let peak = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if peak > 0.0 { peak / WEIGHT_MAX } else { 1.0 };
        scales.push(scale);
        values.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-WEIGHT_MAX, WEIGHT_MAX) as i8),
        );
    }
    let bias = match conv.input.get(2).filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => {
            let (_, b) = view
                .constant_f32(b)
                .ok_or_else(|| format!("cannot read the bias of Conv `{}`", conv.name))?;
            let scales: Vec<f32> = scales.iter().map(|s| s * x_scale).collect();
            let values = b
                .iter()
                .zip(&scales)
                .map(|(v, s)| {
                    (f64::from(*v) / f64::from(*s))
                        .round()
                        .clamp(i32::MIN as f64, i32::MAX as f64) as i32
                })
                .collect();
            Some(PerChannel {
                dims: vec![channels as i64],
                values,
                scales,
            })
        }
    };
    let weights = PerChannel {
        dims: dims.iter().map(|&d| d as i64).collect(),
        values,
        scales,
    };
    Ok((weights, bias))
}

fn bytes_f32(values: &[f32]) -> Vec<u8> {
    bytemuck::cast_slice(values).to_vec()
}

fn tensor_dims(name: &str, data_type: i32, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_owned();
    t.data_type = data_type;
    t.dims = dims.to_vec();
    t.raw_data = raw;
    t
}

fn serialize(proto: &ModelProto, name: &str) -> Result<Vec<u8>> {
    proto
        .write_to_bytes()
        .map_err(|e| Error::model(name, format!("cannot serialize the int8 graph ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::build::{Attr, GraphBuilder};

    fn ramp(n: usize, s: f32) -> Vec<f32> {
        (0..n).map(|i| ((i % 7) as f32 - 3.0) * s).collect()
    }

    /// Global average pool, flatten and a 2-class Gemm `fc` on `feature` (`channels` wide).
    fn classify(g: &mut GraphBuilder, feature: &str, channels: usize) {
        let pooled = g.node("GlobalAveragePool", "pool", &[feature], vec![]);
        let flat = g.node("Flatten", "flat", &[&pooled], vec![]);
        let w = g.constant("fc_w", &[2, channels], &ramp(2 * channels, 0.1));
        let b = g.constant("fc_b", &[2], &[0.0, 0.0]);
        g.node(
            "Gemm",
            "fc",
            &[&flat, &w, &b],
            vec![("transB", Attr::Int(1))],
        );
        g.output("fc");
    }

    /// x → Conv → Relu ─┬→ Conv → Add → Clip(0, 6) → Conv = features → pool → Gemm
    ///                  └──────────↗
    fn residual_net() -> PreparedModel {
        let mut g = GraphBuilder::new("residual");
        g.input("x", &[None, Some(3), Some(8), Some(8)]);
        let w1 = g.constant("w1", &[4, 3, 3, 3], &ramp(108, 0.1));
        let b1 = g.constant("b1", &[4], &[0.1, -0.2, 0.3, 0.0]);
        let w2 = g.constant("w2", &[4, 4, 1, 1], &ramp(16, 0.2));
        let w3 = g.constant("w3", &[6, 4, 1, 1], &ramp(24, 0.3));
        let (lo, hi) = (g.constant("lo", &[], &[0.0]), g.constant("hi", &[], &[6.0]));
        let pad = || vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))];
        let c1 = g.node("Conv", "conv1", &["x", &w1, &b1], pad());
        let r1 = g.node("Relu", "relu1", &[&c1], vec![]);
        let c2 = g.node("Conv", "conv2", &[&r1, &w2], vec![]);
        let sum = g.node("Add", "add", &[&c2, &r1], vec![]);
        let clip = g.node("Clip", "clip", &[&sum, &lo, &hi], vec![]);
        let feat = g.node("Conv", "features", &[&clip, &w3], vec![]);
        classify(&mut g, &feat, 6);
        crate::onnx::prepare(
            g.finish(),
            Path::new("residual.onnx"),
            "residual",
            Some("features"),
        )
        .unwrap()
    }

    fn count(proto: &ModelProto, op: &str) -> usize {
        proto.graph.node.iter().filter(|n| n.op_type == op).count()
    }

    #[test]
    fn activations_fold_into_the_quantization_and_the_features_stay_float() {
        let model = residual_net();
        let plan = QuantPlan::new(&model).unwrap();
        // conv1 and conv2 read and write quantized values; the feature conv writes the float
        // output, so it keeps float weights.
        assert_eq!(plan.int8_convs(), 2);
        let mut calibrated = plan.calibrated_values();
        calibrated.sort();
        assert_eq!(calibrated, ["clip", "conv2", "relu1"]);
        let ranges: HashMap<String, Range> = ["x", "relu1", "conv2", "clip"]
            .iter()
            .map(|v| {
                (
                    v.to_string(),
                    Range {
                        min: -1.0,
                        max: 5.0,
                    },
                )
            })
            .collect();
        let bytes = plan.quantized_model(&model, &ranges).unwrap();
        let q = crate::onnx::parse(&bytes, Path::new("q")).unwrap();
        assert_eq!(
            (count(&q, "Relu"), count(&q, "Clip")),
            (0, 0),
            "folded into uint8 ranges"
        );
        assert_eq!(count(&q, "QuantizeLinear"), 4);
        // Four activations, two int8 weights, one int32 bias.
        assert_eq!(count(&q, "DequantizeLinear"), 7);
        let source_of = |value: &str| {
            q.graph
                .node
                .iter()
                .find(|n| n.op_type == "QuantizeLinear" && n.output[0] == format!("{value}_q"))
                .unwrap()
                .input[0]
                .clone()
        };
        assert_eq!(
            source_of("relu1"),
            "conv1",
            "Relu's input is quantized directly"
        );
        assert_eq!(source_of("clip"), "add");
        assert_eq!(source_of("conv2"), "conv2");
        let features = q.graph.node.iter().find(|n| n.name == "features").unwrap();
        assert_eq!(
            features.input[1], "w3",
            "the feature conv keeps float weights"
        );
        assert_eq!(features.input[0], "clip_dq");
        assert!(q
            .graph
            .output
            .iter()
            .any(|o| o.name == model.feature_output));

        let mut missing = ranges.clone();
        missing.remove("conv2");
        let e = plan.quantized_model(&model, &missing).unwrap_err();
        assert!(e.to_string().contains("conv2"), "{e}");
        let mut nan = ranges;
        nan.insert("clip".into(), Range::EMPTY);
        let e = plan.quantized_model(&model, &nan).unwrap_err();
        assert!(e.to_string().contains("`clip`"), "{e}");
    }

    #[test]
    fn weights_are_symmetric_seven_bit_per_channel_and_biases_int32() {
        let model = residual_net();
        let proto = crate::onnx::parse(&model.onnx, Path::new("m")).unwrap();
        let view = GraphView::new(proto.graph.as_ref().unwrap(), None);
        let conv = view.nodes().iter().find(|n| n.name == "conv1").unwrap();
        let (w, b) = int8_weights(&view, conv, 0.5).unwrap();
        let (_, float) = view.constant_f32("w1").unwrap();
        for (c, row) in float.chunks(27).enumerate() {
            let peak = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!((w.scales[c] - peak / 63.0).abs() < 1e-7);
            for (k, v) in row.iter().enumerate() {
                let q = w.values[c * 27 + k];
                assert!(q.abs() <= 63);
                assert!((f32::from(q) * w.scales[c] - v).abs() <= w.scales[c] / 2.0 + 1e-6);
            }
        }
        let b = b.unwrap();
        assert_eq!(b.values[1], (-0.2f32 / (0.5 * w.scales[1])).round() as i32);
        assert!((b.scales[2] - 0.5 * w.scales[2]).abs() < 1e-9);
    }

    #[test]
    fn old_opsets_and_graphs_without_convolutions_are_refused() {
        let mut model = residual_net();
        let mut proto = crate::onnx::parse(&model.onnx, Path::new("m")).unwrap();
        proto.opset_import[0].version = 11;
        model.onnx = proto.write_to_bytes().unwrap();
        let e = QuantPlan::new(&model).unwrap_err();
        assert!(e.to_string().contains("opset 11"), "{e}");

        let mut g = GraphBuilder::new("mlp");
        g.input("x", &[None, Some(3), Some(4), Some(4)]);
        let r = g.node("Relu", "relu", &["x"], vec![]);
        classify(&mut g, &r, 3);
        let model =
            crate::onnx::prepare(g.finish(), Path::new("mlp.onnx"), "mlp", Some("relu")).unwrap();
        let e = QuantPlan::new(&model).unwrap_err();
        assert!(e.to_string().contains("no convolution"), "{e}");
    }
}
