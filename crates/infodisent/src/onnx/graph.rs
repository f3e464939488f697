//! A read-only view of an ONNX graph: who produces and consumes each value, constant tensors,
//! attributes. Every lookup fails with a message instead of panicking, since model files are user
//! input.

use super::external::{is_external, ExternalData};
use onnx_protobuf::{attribute_proto::AttributeType, GraphProto, NodeProto, TensorProto};
use std::borrow::Cow;
use std::collections::HashMap;

/// ONNX `TensorProto.DataType` codes this crate reads.
pub mod dtype {
    /// 32-bit float.
    pub const FLOAT: i32 = 1;
    /// 32-bit signed integer.
    pub const INT32: i32 = 6;
    /// 64-bit signed integer.
    pub const INT64: i32 = 7;
    /// 64-bit float.
    pub const DOUBLE: i32 = 11;
}

/// Index of a graph's nodes and constants.
pub struct GraphView<'g> {
    /// The graph itself.
    pub graph: &'g GraphProto,
    producer: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<usize>>,
    initializers: HashMap<&'g str, &'g TensorProto>,
    external: Option<&'g ExternalData>,
}

impl<'g> GraphView<'g> {
    /// Indexes `graph`; `external` resolves tensors stored beside the model file (without it,
    /// such tensors read as unknown).
    pub fn new(graph: &'g GraphProto, external: Option<&'g ExternalData>) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, node) in graph.node.iter().enumerate() {
            for out in &node.output {
                producer.insert(out.as_str(), i);
            }
            for inp in node.input.iter().filter(|s| !s.is_empty()) {
                consumers.entry(inp.as_str()).or_default().push(i);
            }
        }
        let initializers = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        GraphView {
            graph,
            producer,
            consumers,
            initializers,
            external,
        }
    }

    /// The nodes in (topological) file order.
    pub fn nodes(&self) -> &'g [NodeProto] {
        &self.graph.node
    }

    /// The node that produces `value`, if any.
    pub fn producer(&self, value: &str) -> Option<(usize, &'g NodeProto)> {
        self.producer.get(value).map(|&i| (i, &self.graph.node[i]))
    }

    /// The nodes that read `value`.
    pub fn consumers(&self, value: &str) -> Vec<&'g NodeProto> {
        self.consumer_indices(value)
            .iter()
            .map(|&i| &self.graph.node[i])
            .collect()
    }

    /// Indices of the nodes that read `value`, once per input slot that reads it.
    pub fn consumer_indices(&self, value: &str) -> &[usize] {
        self.consumers.get(value).map_or(&[], Vec::as_slice)
    }

    /// Whether `value` is a graph output.
    pub fn is_output(&self, value: &str) -> bool {
        self.graph.output.iter().any(|o| o.name == value)
    }

    /// The graph inputs that are real inputs (not initializers listed as inputs, as old exporters do).
    pub fn real_inputs(&self) -> Vec<&'g onnx_protobuf::ValueInfoProto> {
        self.graph
            .input
            .iter()
            .filter(|i| !self.initializers.contains_key(i.name.as_str()))
            .collect()
    }

    /// The constant tensor behind `value`: an initializer or the output of a `Constant` node,
    /// also through `Identity` nodes (exporters alias deduplicated weights that way).
    pub fn constant(&self, value: &str) -> Option<&'g TensorProto> {
        if let Some(t) = self.initializers.get(value) {
            return Some(t);
        }
        let (_, node) = self.producer(value)?;
        match node.op_type.as_str() {
            "Identity" => self.constant(node.input.first()?),
            "Constant" => node
                .attribute
                .iter()
                .find(|a| a.name == "value")
                .and_then(|a| a.t.as_ref()),
            _ => None,
        }
    }

    /// A constant as f32 values with its dims.
    pub fn constant_f32(&self, value: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        let t = self.constant(value)?;
        Some((dims(t)?, tensor_f32(t, self.external).ok()?))
    }

    /// A constant as i64 values (also `Constant` nodes with `value_int(s)`).
    pub fn constant_i64(&self, value: &str) -> Option<Vec<i64>> {
        if let Some(t) = self.constant(value) {
            return tensor_i64(t, self.external).ok();
        }
        let (_, node) = self.producer(value)?;
        if node.op_type != "Constant" {
            return None;
        }
        let attr = node
            .attribute
            .iter()
            .find(|a| a.name == "value_ints" || a.name == "value_int")?;
        Some(if attr.name == "value_int" {
            vec![attr.i]
        } else {
            attr.ints.clone()
        })
    }
}

/// A tensor's dims as `usize`, `None` when negative.
pub fn dims(t: &TensorProto) -> Option<Vec<usize>> {
    t.dims.iter().map(|&d| usize::try_from(d).ok()).collect()
}

fn element_count(t: &TensorProto) -> Result<usize, String> {
    dims(t)
        .map(|d| d.iter().product())
        .ok_or_else(|| format!("tensor `{}` has negative dims {:?}", t.name, t.dims))
}

/// Decodes a float tensor (float, or double narrowed) stored inline, as raw bytes, or in an
/// external file resolved by `external`.
pub fn tensor_f32(t: &TensorProto, external: Option<&ExternalData>) -> Result<Vec<f32>, String> {
    let n = element_count(t)?;
    let values: Vec<f32> = match (t.data_type, raw_bytes(t, n, external)?) {
        (dtype::FLOAT, Some(raw)) => raw_le(&raw, n, &t.name, f32::from_le_bytes)?,
        (dtype::FLOAT, None) => t.float_data.clone(),
        (dtype::DOUBLE, Some(raw)) => {
            raw_le(&raw, n, &t.name, |b: [u8; 8]| f64::from_le_bytes(b) as f32)?
        }
        (dtype::DOUBLE, None) => t.double_data.iter().map(|&v| v as f32).collect(),
        (other, _) => {
            return Err(format!(
                "tensor `{}` has data type {other}, expected float",
                t.name
            ))
        }
    };
    with_count(values, n, t)
}

/// Decodes an integer tensor (int64 or int32) stored inline, as raw bytes, or externally.
pub fn tensor_i64(t: &TensorProto, external: Option<&ExternalData>) -> Result<Vec<i64>, String> {
    let n = element_count(t)?;
    let values: Vec<i64> = match (t.data_type, raw_bytes(t, n, external)?) {
        (dtype::INT64, Some(raw)) => raw_le(&raw, n, &t.name, i64::from_le_bytes)?,
        (dtype::INT64, None) => t.int64_data.clone(),
        (dtype::INT32, Some(raw)) => {
            raw_le(&raw, n, &t.name, |b: [u8; 4]| i32::from_le_bytes(b) as i64)?
        }
        (dtype::INT32, None) => t.int32_data.iter().map(|&v| v as i64).collect(),
        (other, _) => {
            return Err(format!(
                "tensor `{}` has data type {other}, expected an integer",
                t.name
            ))
        }
    };
    with_count(values, n, t)
}

/// The tensor's raw bytes when it has them (inline `raw_data` or an external file), `None` when
/// its values sit in the typed fields.
fn raw_bytes<'t>(
    t: &'t TensorProto,
    n: usize,
    external: Option<&ExternalData>,
) -> Result<Option<Cow<'t, [u8]>>, String> {
    if is_external(t) {
        let external = external.ok_or_else(|| {
            format!(
                "tensor `{}` stores its values in an external file; load the model by its path",
                t.name
            )
        })?;
        let width = match t.data_type {
            dtype::FLOAT | dtype::INT32 => 4,
            dtype::INT64 | dtype::DOUBLE => 8,
            other => {
                return Err(format!(
                    "tensor `{}` has data type {other}, which this reader does not decode",
                    t.name
                ))
            }
        };
        return external.read(t, n * width).map(|b| Some(Cow::Owned(b)));
    }
    Ok((!t.raw_data.is_empty()).then_some(Cow::Borrowed(t.raw_data.as_slice())))
}

/// `values` when they are as many as the tensor's dims say.
fn with_count<T>(values: Vec<T>, n: usize, t: &TensorProto) -> Result<Vec<T>, String> {
    if values.len() != n {
        return Err(format!(
            "tensor `{}` holds {} values for dims {:?}",
            t.name,
            values.len(),
            t.dims
        ));
    }
    Ok(values)
}

fn raw_le<T, const W: usize>(
    raw: &[u8],
    n: usize,
    name: &str,
    decode: impl Fn([u8; W]) -> T,
) -> Result<Vec<T>, String> {
    if raw.len() != n * W {
        return Err(format!(
            "tensor `{name}` has {} raw bytes for {n} elements",
            raw.len()
        ));
    }
    Ok(raw
        .chunks_exact(W)
        .map(|c| decode(c.try_into().expect("chunks_exact yields W bytes")))
        .collect())
}

/// An integer attribute of `node`, or `default`.
pub fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.i)
}

/// A float attribute of `node`, or `default`.
pub fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.f)
}

/// An integer-list attribute of `node`, if present.
pub fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| {
            a.name == name
                && (a.type_.enum_value() == Ok(AttributeType::INTS) || !a.ints.is_empty())
        })
        .map(|a| a.ints.clone())
}

/// A string attribute of `node`, if present.
pub fn attr_s(node: &NodeProto, name: &str) -> Option<String> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// How a node is called in messages: its name, or its op and first output when unnamed.
pub fn node_label(node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!(
            "{} -> {}",
            node.op_type,
            node.output.first().map_or("?", String::as_str)
        )
    } else {
        node.name.clone()
    }
}
