//! Forward FLOP count of a graph at a given batch and image size, from static shapes.
//!
//! Convention: convolutions and matrix products count 2 FLOPs per multiply-accumulate; pools
//! count one per input element read; every other op with a known output counts one per output
//! element (normalisations a few). Shape-only ops (Reshape, Shape, Constant…) count nothing.

use super::graph::{attr_i, attr_ints, GraphView};
use super::shapes::{infer, Shapes};
use crate::error::{Error, Result};
use crate::onnx::model::PreparedModel;

/// FLOPs of one forward pass of `model` over `batch` images at its preprocessing crop size.
pub fn count_flops(model: &PreparedModel, batch: usize) -> Result<f64> {
    let proto = super::parse(&model.onnx, std::path::Path::new(&model.name))?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::model(&model.name, "the model has no graph"))?;
    let view = GraphView::new(graph, model.external.as_ref());
    let shapes = infer(&view, batch, model.preprocess.crop);
    graph_flops(&view, &shapes).map_err(|msg| Error::model(&model.name, msg))
}

/// FLOPs of the nodes of `view` under `shapes`; fails on a heavy node of unknown shape.
pub fn graph_flops(view: &GraphView, shapes: &Shapes) -> std::result::Result<f64, String> {
    let mut total = 0.0;
    for node in view.nodes() {
        let out = node.output.first().and_then(|o| shapes.get(o));
        let input = |i: usize| node.input.get(i).and_then(|n| shapes.get(n));
        let elems = |s: Option<&[usize]>| s.map_or(0.0, |s| s.iter().product::<usize>() as f64);
        let unknown = || {
            format!(
                "cannot count FLOPs: the shape of `{}` ({}) is unknown",
                node.output.first().map_or("?", String::as_str),
                node.op_type
            )
        };
        total += match node.op_type.as_str() {
            "Conv" => {
                let (out, w) = (out.ok_or_else(unknown)?, input(1).ok_or_else(unknown)?);
                let per_output: usize = w[1..].iter().product();
                2.0 * out.iter().product::<usize>() as f64 * per_output as f64
            }
            "Gemm" => {
                let (a, out) = (input(0).ok_or_else(unknown)?, out.ok_or_else(unknown)?);
                let k = if attr_i(node, "transA", 0) != 0 {
                    a[0]
                } else {
                    a[a.len() - 1]
                };
                2.0 * (out.iter().product::<usize>() * k) as f64
            }
            "MatMul" => {
                let (a, out) = (input(0).ok_or_else(unknown)?, out.ok_or_else(unknown)?);
                2.0 * (out.iter().product::<usize>() * a[a.len() - 1]) as f64
            }
            "MaxPool" | "AveragePool" => {
                let k: usize = attr_ints(node, "kernel_shape")
                    .unwrap_or_default()
                    .iter()
                    .map(|&v| v as usize)
                    .product();
                elems(out) * k as f64
            }
            "GlobalAveragePool" | "GlobalMaxPool" | "ReduceMean" | "ReduceSum" | "ReduceMax" => {
                elems(input(0))
            }
            "BatchNormalization" => 2.0 * elems(out),
            "LayerNormalization" | "Softmax" => 5.0 * elems(out),
            "Reshape" | "Flatten" | "Shape" | "Constant" | "Squeeze" | "Unsqueeze"
            | "Transpose" | "Identity" | "Dropout" | "Gather" | "Slice" | "Concat" | "Cast" => 0.0,
            _ => elems(out),
        };
    }
    Ok(total)
}
