//! Writing ONNX graphs: the built-in models are assembled with this, and tests use it to make
//! small graphs of known weights.

use super::graph::dtype;
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// The opset the built graphs declare (LayerNormalization needs 17).
pub const OPSET: i64 = 17;

/// A node attribute value.
pub enum Attr {
    /// One integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// One float.
    Float(f32),
    /// A string.
    Str(String),
}

/// A graph under construction; values are named by the caller.
#[derive(Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new(name: &str) -> Self {
        let mut graph = GraphProto::new();
        graph.name = name.to_owned();
        GraphBuilder { graph, counter: 0 }
    }

    /// Declares a float input; `None` dims are symbolic (`batch`, `height`, `width`).
    pub fn input(&mut self, name: &str, dims: &[Option<i64>]) {
        self.graph
            .input
            .push(value_info(name, dtype::FLOAT, Some(dims)));
    }

    /// Declares a float output of unknown shape.
    pub fn output(&mut self, name: &str) {
        self.graph.output.push(value_info(name, dtype::FLOAT, None));
    }

    /// Adds a float initializer and returns its name.
    pub fn constant(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        debug_assert_eq!(
            dims.iter().product::<usize>(),
            values.len(),
            "initializer `{name}`"
        );
        let mut t = TensorProto::new();
        t.name = name.to_owned();
        t.data_type = dtype::FLOAT;
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.raw_data = bytemuck::cast_slice(values).to_vec();
        self.graph.initializer.push(t);
        name.to_owned()
    }

    /// Adds an int64 initializer and returns its name.
    pub fn constant_i64(&mut self, name: &str, dims: &[usize], values: &[i64]) -> String {
        let mut t = TensorProto::new();
        t.name = name.to_owned();
        t.data_type = dtype::INT64;
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.int64_data = values.to_vec();
        self.graph.initializer.push(t);
        name.to_owned()
    }

    /// Adds a node named `name` with one output value of the same name; returns that name.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        self.graph
            .node
            .push(node_proto(op, name, inputs, name, attrs));
        name.to_owned()
    }

    /// Like [`GraphBuilder::node`] with a generated unique name `<prefix>_<n>`.
    pub fn auto(
        &mut self,
        op: &str,
        prefix: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        self.counter += 1;
        let name = format!("{prefix}_{}", self.counter);
        self.node(op, &name, inputs, attrs)
    }

    /// Finishes the model.
    pub fn finish(self) -> ModelProto {
        let mut model = ModelProto::new();
        model.ir_version = 8;
        model.producer_name = "infodisent".to_owned();
        let mut opset = OperatorSetIdProto::new();
        opset.version = OPSET;
        model.opset_import.push(opset);
        model.graph = protobuf::MessageField::some(self.graph);
        model
    }
}

/// A node named `name` computing `output` from `inputs`.
pub fn node_proto(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<(&str, Attr)>,
) -> NodeProto {
    let mut node = NodeProto::new();
    node.op_type = op.to_owned();
    node.name = name.to_owned();
    node.input = inputs.iter().map(|s| (*s).to_owned()).collect();
    node.output = vec![output.to_owned()];
    node.attribute = attrs.into_iter().map(|(k, v)| attribute(k, v)).collect();
    node
}

fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    let kind = match value {
        Attr::Int(i) => {
            a.i = i;
            AttributeType::INT
        }
        Attr::Ints(v) => {
            a.ints = v;
            AttributeType::INTS
        }
        Attr::Float(f) => {
            a.f = f;
            AttributeType::FLOAT
        }
        Attr::Str(s) => {
            a.s = s.into_bytes();
            AttributeType::STRING
        }
    };
    a.type_ = kind.into();
    a
}

/// Name of a symbolic dim: `batch` first, then `height`/`width` for images.
fn symbolic_dim(i: usize, rank: usize) -> String {
    match (i, rank) {
        (0, _) => "batch".to_owned(),
        (2, 4) => "height".to_owned(),
        (3, 4) => "width".to_owned(),
        _ => format!("dim{i}"),
    }
}

/// A tensor value info; `dims` `None` leaves the shape unknown, a `None` dim is symbolic.
pub fn value_info(name: &str, elem_type: i32, dims: Option<&[Option<i64>]>) -> ValueInfoProto {
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = elem_type;
    if let Some(dims) = dims {
        let mut shape = TensorShapeProto::new();
        shape.dim = dims
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut dim = tensor_shape_proto::Dimension::new();
                dim.value = Some(match d {
                    Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                    None => {
                        tensor_shape_proto::dimension::Value::DimParam(symbolic_dim(i, dims.len()))
                    }
                });
                dim
            })
            .collect();
        tensor.shape = protobuf::MessageField::some(shape);
    }
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tensor));
    let mut vi = ValueInfoProto::new();
    vi.name = name.to_owned();
    vi.type_ = protobuf::MessageField::some(ty);
    vi
}
