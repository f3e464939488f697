//! Static shape propagation for a fixed batch and image size: enough of ONNX to follow CNNs and
//! ViTs (convolutions, pools, elementwise ops, reshapes, matrix products, token slicing). Values
//! whose shape cannot be worked out are simply absent; callers treat that as unknown.

use super::graph::{attr_i, attr_ints, attr_s, dims, GraphView};
use onnx_protobuf::{tensor_shape_proto::dimension::Value as Dim, type_proto, NodeProto};
use std::collections::HashMap;

/// Shapes (and small integer constants, for `Reshape` targets built from `Shape`) of graph values.
#[derive(Debug, Default)]
pub struct Shapes {
    /// Known shapes by value name.
    pub shapes: HashMap<String, Vec<usize>>,
    ints: HashMap<String, Vec<i64>>,
}

impl Shapes {
    /// The shape of `value`, when known.
    pub fn get(&self, value: &str) -> Option<&[usize]> {
        self.shapes.get(value).map(Vec::as_slice)
    }
}

/// Propagates shapes through `view` for an image input of `[batch, C, size, size]` (symbolic input
/// dims are filled in from these).
pub fn infer(view: &GraphView, batch: usize, size: usize) -> Shapes {
    let mut s = Shapes::default();
    for t in &view.graph.initializer {
        if let Some(d) = dims(t) {
            s.shapes.insert(t.name.clone(), d);
        }
        if let Some(v) = view.constant_i64(&t.name) {
            s.ints.insert(t.name.clone(), v);
        }
    }
    for input in view.real_inputs() {
        if let Some(type_proto::Value::TensorType(t)) =
            input.type_.as_ref().and_then(|t| t.value.as_ref())
        {
            if let Some(shape) = t.shape.as_ref() {
                let rank = shape.dim.len();
                let d = shape
                    .dim
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match &d.value {
                        Some(Dim::DimValue(v)) if *v > 0 && i != 0 => *v as usize,
                        _ if i == 0 => batch,
                        _ if rank == 4 && i == 1 => 3,
                        _ if rank == 4 && i >= 2 => size,
                        _ => 0,
                    })
                    .collect::<Vec<_>>();
                if !d.contains(&0) {
                    s.shapes.insert(input.name.clone(), d);
                }
            }
        }
    }
    let recorded = recorded_shapes(view, batch);
    for node in view.nodes() {
        if node.op_type == "Constant" {
            if let Some(t) = view.constant(&node.output[0]) {
                if let Some(d) = dims(t) {
                    s.shapes.insert(node.output[0].clone(), d);
                }
            }
            if let Some(v) = view.constant_i64(&node.output[0]) {
                s.ints.insert(node.output[0].clone(), v);
            }
            continue;
        }
        fold_ints(node, &mut s);
        for (i, name) in node.output.iter().enumerate() {
            // What the exporter recorded beats what this partial inference works out.
            let shape = match recorded.get(name.as_str()) {
                Some(shape) => Some(shape.clone()),
                None if i == 0 => infer_node(node, &s),
                None => None,
            };
            if let Some(shape) = shape {
                s.shapes.insert(name.clone(), shape);
            }
        }
    }
    s
}

/// Shapes the exporter recorded in `value_info` (torch's dynamo exporter records most), with the
/// image input's symbolic batch dim read as `batch`; a value with any other symbolic dim is left
/// out.
fn recorded_shapes<'g>(view: &GraphView<'g>, batch: usize) -> HashMap<&'g str, Vec<usize>> {
    let batch_name =
        view.real_inputs()
            .first()
            .and_then(|i| match i.type_.as_ref()?.value.as_ref()? {
                type_proto::Value::TensorType(t) => match t.shape.as_ref()?.dim.first()?.value {
                    Some(Dim::DimParam(ref p)) => Some(p.clone()),
                    _ => None,
                },
                _ => None,
            });
    view.graph
        .value_info
        .iter()
        .filter_map(|vi| {
            let type_proto::Value::TensorType(t) = vi.type_.as_ref()?.value.as_ref()? else {
                return None;
            };
            let dims = t
                .shape
                .as_ref()?
                .dim
                .iter()
                .map(|d| match &d.value {
                    Some(Dim::DimValue(v)) if *v >= 0 => Some(*v as usize),
                    Some(Dim::DimParam(p)) if Some(p) == batch_name.as_ref() => Some(batch),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some((vi.name.as_str(), dims))
        })
        .collect()
}

/// Tracks small integer tensors (shape arithmetic) so `Reshape` targets can be resolved.
fn fold_ints(node: &NodeProto, s: &mut Shapes) {
    let int = |i: usize| node.input.get(i).and_then(|n| s.ints.get(n));
    let value: Option<Vec<i64>> = match node.op_type.as_str() {
        "Shape" => s
            .get(&node.input[0])
            .map(|d| d.iter().map(|&v| v as i64).collect()),
        "Gather" => match (int(0), int(1)) {
            (Some(data), Some(idx)) if attr_i(node, "axis", 0) == 0 => idx
                .iter()
                .map(|&i| {
                    data.get(if i < 0 {
                        (data.len() as i64 + i) as usize
                    } else {
                        i as usize
                    })
                    .copied()
                })
                .collect(),
            _ => None,
        },
        "Unsqueeze" | "Squeeze" | "Cast" | "Identity" => int(0).cloned(),
        "Concat" => node
            .input
            .iter()
            .map(|n| s.ints.get(n).cloned())
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat()),
        "Mul" | "Div" | "Add" | "Sub" => match (int(0), int(1)) {
            (Some(a), Some(b)) if a.len() == b.len() || a.len() == 1 || b.len() == 1 => {
                let n = a.len().max(b.len());
                let get = |v: &Vec<i64>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
                (0..n)
                    .map(|i| {
                        let (x, y) = (get(a, i), get(b, i));
                        match node.op_type.as_str() {
                            "Mul" => Some(x * y),
                            "Add" => Some(x + y),
                            "Sub" => Some(x - y),
                            _ => x.checked_div(y),
                        }
                    })
                    .collect()
            }
            _ => None,
        },
        _ => None,
    };
    if let (Some(v), Some(name)) = (value, node.output.first()) {
        s.ints.insert(name.clone(), v);
    }
}

fn infer_node(node: &NodeProto, s: &Shapes) -> Option<Vec<usize>> {
    let shape = |i: usize| {
        node.input
            .get(i)
            .filter(|n| !n.is_empty())
            .and_then(|n| s.get(n))
    };
    let ints = |i: usize| {
        node.input
            .get(i)
            .filter(|n| !n.is_empty())
            .and_then(|n| s.ints.get(n))
    };
    let x = shape(0);
    match node.op_type.as_str() {
        "Conv" => {
            let (x, w) = (x?, shape(1)?);
            let mut out = vec![x[0], w[0]];
            out.extend(spatial_out(node, &x[2..], &w[2..])?);
            Some(out)
        }
        "MaxPool" | "AveragePool" | "LpPool" => {
            let x = x?;
            let k: Vec<usize> = attr_ints(node, "kernel_shape")?
                .iter()
                .map(|&v| v as usize)
                .collect();
            let mut out = x[..2].to_vec();
            out.extend(spatial_out(node, &x[2..], &k)?);
            Some(out)
        }
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let x = x?;
            Some(
                x.iter()
                    .enumerate()
                    .map(|(i, &d)| if i < 2 { d } else { 1 })
                    .collect(),
            )
        }
        "Relu"
        | "Clip"
        | "Sigmoid"
        | "Tanh"
        | "HardSigmoid"
        | "HardSwish"
        | "LeakyRelu"
        | "Identity"
        | "Dropout"
        | "Erf"
        | "Sqrt"
        | "Neg"
        | "Exp"
        | "Log"
        | "Softmax"
        | "LogSoftmax"
        | "Gelu"
        | "BatchNormalization"
        | "LayerNormalization"
        | "Cast"
        | "Elu"
        | "Selu"
        | "PRelu"
        | "Abs"
        | "Reciprocal"
        | "InstanceNormalization"
        | "Softplus"
        | "Mish" => x.map(<[usize]>::to_vec),
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Where" | "Equal"
        | "Greater" | "Less" => {
            let mut out: Vec<usize> = Vec::new();
            for i in 0..node.input.len() {
                out = broadcast(&out, shape(i)?)?;
            }
            Some(out)
        }
        "Expand" => {
            let target: Vec<usize> = ints(1)?
                .iter()
                .map(|&v| usize::try_from(v).ok())
                .collect::<Option<_>>()?;
            broadcast(x?, &target)
        }
        "Flatten" => {
            let x = x?;
            let axis = norm_axis(attr_i(node, "axis", 1), x.len() + 1)?;
            Some(vec![x[..axis].iter().product(), x[axis..].iter().product()])
        }
        "Reshape" => {
            let (x, target) = (x?, ints(1)?);
            let total: usize = x.iter().product();
            let mut out: Vec<usize> = Vec::with_capacity(target.len());
            let mut infer_at = None;
            for (i, &t) in target.iter().enumerate() {
                match t {
                    0 => out.push(*x.get(i)?),
                    -1 => {
                        infer_at = Some(i);
                        out.push(1);
                    }
                    t if t > 0 => out.push(t as usize),
                    _ => return None,
                }
            }
            if let Some(i) = infer_at {
                let known: usize = out.iter().product();
                if known == 0 || !total.is_multiple_of(known) {
                    return None;
                }
                out[i] = total / known;
            }
            (out.iter().product::<usize>() == total).then_some(out)
        }
        "Transpose" => {
            let x = x?;
            let perm =
                attr_ints(node, "perm").unwrap_or_else(|| (0..x.len() as i64).rev().collect());
            perm.iter().map(|&p| x.get(p as usize).copied()).collect()
        }
        "Gemm" => {
            let (a, b) = (x?, shape(1)?);
            if a.len() != 2 || b.len() != 2 {
                return None;
            }
            let m = if attr_i(node, "transA", 0) != 0 {
                a[1]
            } else {
                a[0]
            };
            let n = if attr_i(node, "transB", 0) != 0 {
                b[0]
            } else {
                b[1]
            };
            Some(vec![m, n])
        }
        "MatMul" => {
            let (a, b) = (x?, shape(1)?);
            let (a2, b2) = (
                if a.len() == 1 {
                    vec![1, a[0]]
                } else {
                    a.to_vec()
                },
                if b.len() == 1 {
                    vec![b[0], 1]
                } else {
                    b.to_vec()
                },
            );
            let batch = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
            let mut out = batch;
            if a.len() > 1 {
                out.push(a2[a2.len() - 2]);
            }
            if b.len() > 1 {
                out.push(b2[b2.len() - 1]);
            }
            Some(out)
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => {
            let x = x?;
            let axes = attr_ints(node, "axes")
                .or_else(|| ints(1).cloned())
                .unwrap_or_else(|| (0..x.len() as i64).collect());
            let axes: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(a, x.len()))
                .collect::<Option<_>>()?;
            let keep = attr_i(node, "keepdims", 1) != 0;
            Some(
                x.iter()
                    .enumerate()
                    .filter_map(|(i, &d)| match (axes.contains(&i), keep) {
                        (true, true) => Some(1),
                        (true, false) => None,
                        _ => Some(d),
                    })
                    .collect(),
            )
        }
        "Concat" => {
            let first = x?;
            let axis = norm_axis(attr_i(node, "axis", 0), first.len())?;
            let mut out = first.to_vec();
            for i in 1..node.input.len() {
                out[axis] += shape(i)?.get(axis)?;
            }
            Some(out)
        }
        "Gather" => {
            let (data, idx) = (x?, shape(1)?);
            let axis = norm_axis(attr_i(node, "axis", 0), data.len())?;
            let mut out = data[..axis].to_vec();
            out.extend_from_slice(idx);
            out.extend_from_slice(&data[axis + 1..]);
            Some(out)
        }
        "Slice" => {
            let x = x?;
            let (starts, ends) = (ints(1)?, ints(2)?);
            let axes = ints(3)
                .cloned()
                .unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = ints(4).cloned().unwrap_or_else(|| vec![1; starts.len()]);
            let mut out = x.to_vec();
            for (k, &a) in axes.iter().enumerate() {
                let axis = norm_axis(a, x.len())?;
                let dim = x[axis] as i64;
                let clamp = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
                let (b, e, st) = (clamp(starts[k]), clamp(ends[k]), *steps.get(k)?);
                if st <= 0 {
                    return None;
                }
                out[axis] = ((e - b).max(0) as usize).div_ceil(st as usize);
            }
            Some(out)
        }
        "Squeeze" => {
            let x = x?;
            let axes = attr_ints(node, "axes").or_else(|| ints(1).cloned());
            let axes: Vec<usize> = match axes {
                Some(a) => a
                    .iter()
                    .map(|&v| norm_axis(v, x.len()))
                    .collect::<Option<_>>()?,
                None => (0..x.len()).filter(|&i| x[i] == 1).collect(),
            };
            Some(
                x.iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, &d)| d)
                    .collect(),
            )
        }
        "Unsqueeze" => {
            let x = x?;
            let axes = attr_ints(node, "axes").or_else(|| ints(1).cloned())?;
            let rank = x.len() + axes.len();
            let axes: Vec<usize> = axes
                .iter()
                .map(|&v| norm_axis(v, rank))
                .collect::<Option<_>>()?;
            let mut rest = x.iter();
            (0..rank)
                .map(|i| {
                    if axes.contains(&i) {
                        Some(1)
                    } else {
                        rest.next().copied()
                    }
                })
                .collect()
        }
        "Shape" => Some(vec![x?.len()]),
        _ => None,
    }
}

/// Output spatial sizes of a windowed op (Conv, pools) with ONNX padding rules.
fn spatial_out(node: &NodeProto, input: &[usize], kernel: &[usize]) -> Option<Vec<usize>> {
    let n = input.len();
    if kernel.len() != n {
        return None;
    }
    let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; n]);
    let dilations = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; n]);
    let pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * n]);
    let auto_pad = attr_s(node, "auto_pad").unwrap_or_default();
    let ceil_mode = attr_i(node, "ceil_mode", 0) != 0;
    (0..n)
        .map(|i| {
            let (x, s) = (input[i] as i64, *strides.get(i)?);
            let k = (kernel[i] as i64 - 1) * dilations.get(i)? + 1;
            if s <= 0 {
                return None;
            }
            let out = match auto_pad.as_str() {
                "SAME_UPPER" | "SAME_LOWER" => (x + s - 1) / s,
                "VALID" => (x - k) / s + 1,
                _ => {
                    let span = x + pads.get(i)? + pads.get(i + n)? - k;
                    if ceil_mode {
                        (span + s - 1) / s + 1
                    } else {
                        span / s + 1
                    }
                }
            };
            usize::try_from(out).ok().filter(|&o| o > 0)
        })
        .collect()
}

/// Numpy broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                1
            };
            let db = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// A possibly negative axis as an index into `rank` dims.
pub fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a).ok().filter(|&a| a < rank)
}
