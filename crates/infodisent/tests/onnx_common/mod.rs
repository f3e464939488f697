//! Small ONNX graphs of known random weights for the detection and engine tests.

use infodisent::onnx::build::{Attr, GraphBuilder};
use onnx_protobuf::ModelProto;
use rand::{Rng, SeedableRng};

/// Known weights of a built test graph's classifier.
pub struct Head {
    /// [classes, dim], row-major.
    pub weight: Vec<f32>,
    /// [classes].
    pub bias: Vec<f32>,
}

fn random(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Conv→Relu→Conv→Add(residual)→Relu→GlobalAveragePool→Flatten→Gemm(transB=1) on 3×8×8 images:
/// 4 channels, 5 classes. The last map is the node `final_relu`.
pub fn resnet() -> (ModelProto, Head) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut g = GraphBuilder::new("tiny_resnet");
    g.input("pixels", &[None, Some(3), Some(8), Some(8)]);
    let conv =
        |g: &mut GraphBuilder, rng: &mut rand::rngs::StdRng, name: &str, x: &str, cin: usize| {
            let w = g.constant(
                &format!("{name}.w"),
                &[4, cin, 3, 3],
                &random(rng, 4 * cin * 9),
            );
            let b = g.constant(&format!("{name}.b"), &[4], &random(rng, 4));
            g.node(
                "Conv",
                name,
                &[x, &w, &b],
                vec![
                    ("kernel_shape", Attr::Ints(vec![3, 3])),
                    ("pads", Attr::Ints(vec![1; 4])),
                ],
            )
        };
    let c1 = conv(&mut g, &mut rng, "conv1", "pixels", 3);
    let r1 = g.node("Relu", "first_relu", &[&c1], vec![]);
    let c2 = conv(&mut g, &mut rng, "conv2", &r1, 4);
    let sum = g.node("Add", "residual", &[&c2, &r1], vec![]);
    let r2 = g.node("Relu", "final_relu", &[&sum], vec![]);
    let pooled = g.node("GlobalAveragePool", "gap", &[&r2], vec![]);
    let flat = g.node("Flatten", "flatten", &[&pooled], vec![]);
    let head = Head {
        weight: random(&mut rng, 5 * 4),
        bias: random(&mut rng, 5),
    };
    let w = g.constant("fc.w", &[5, 4], &head.weight);
    let b = g.constant("fc.b", &[5], &head.bias);
    g.node(
        "Gemm",
        "logits",
        &[&flat, &w, &b],
        vec![("transB", Attr::Int(1))],
    );
    g.output("logits");
    (g.finish(), head)
}

/// A ViT in miniature on 3×8×8 images: 4×4 patch Conv to 6 channels, tokens [N,4,6], a class
/// token prepended, LayerNormalization (`final_norm`), class token taken with Gather, then a
/// linear head to 5 classes as Gemm (B stored [D,C]) or as MatMul+Add.
pub fn vit(matmul_head: bool) -> (ModelProto, Head) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut g = GraphBuilder::new("tiny_vit");
    g.input("pixels", &[None, Some(3), Some(8), Some(8)]);
    let pw = g.constant("patch.w", &[6, 3, 4, 4], &random(&mut rng, 6 * 3 * 16));
    let pb = g.constant("patch.b", &[6], &random(&mut rng, 6));
    let patches = g.node(
        "Conv",
        "patch",
        &["pixels", &pw, &pb],
        vec![
            ("kernel_shape", Attr::Ints(vec![4, 4])),
            ("strides", Attr::Ints(vec![4, 4])),
        ],
    );
    let shape = g.constant_i64("tokens_shape", &[3], &[0, 6, 4]);
    let flat = g.node("Reshape", "flatten_patches", &[&patches, &shape], vec![]);
    let tokens = g.node(
        "Transpose",
        "tokens",
        &[&flat],
        vec![("perm", Attr::Ints(vec![0, 2, 1]))],
    );
    let cls = g.constant("cls_token", &[1, 1, 6], &random(&mut rng, 6));
    let batch_shape = g.node("Shape", "input_shape", &["pixels"], vec![]);
    let zero = g.constant_i64("index0", &[1], &[0]);
    let n = g.node(
        "Gather",
        "batch_size",
        &[&batch_shape, &zero],
        vec![("axis", Attr::Int(0))],
    );
    let rest = g.constant_i64("cls_rest", &[2], &[1, 6]);
    let cls_shape = g.node(
        "Concat",
        "cls_shape",
        &[&n, &rest],
        vec![("axis", Attr::Int(0))],
    );
    let cls_batch = g.node("Expand", "cls_batch", &[&cls, &cls_shape], vec![]);
    let all = g.node(
        "Concat",
        "with_cls",
        &[&cls_batch, &tokens],
        vec![("axis", Attr::Int(1))],
    );
    let scale = g.constant("norm.scale", &[6], &random(&mut rng, 6));
    let shift = g.constant("norm.bias", &[6], &random(&mut rng, 6));
    let normed = g.node(
        "LayerNormalization",
        "final_norm",
        &[&all, &scale, &shift],
        vec![("axis", Attr::Int(-1))],
    );
    let first = g.constant_i64("cls_index", &[], &[0]);
    let cls_out = g.node(
        "Gather",
        "take_cls",
        &[&normed, &first],
        vec![("axis", Attr::Int(1))],
    );
    let head = Head {
        weight: random(&mut rng, 5 * 6),
        bias: random(&mut rng, 5),
    };
    let mut w_dc = vec![0.0; 30];
    for c in 0..5 {
        for d in 0..6 {
            w_dc[d * 5 + c] = head.weight[c * 6 + d];
        }
    }
    let w = g.constant("head.w", &[6, 5], &w_dc);
    let b = g.constant("head.b", &[5], &head.bias);
    if matmul_head {
        let mm = g.node("MatMul", "head_matmul", &[&cls_out, &w], vec![]);
        g.node("Add", "logits", &[&mm, &b], vec![]);
    } else {
        g.node("Gemm", "logits", &[&cls_out, &w, &b], vec![]);
    }
    g.output("logits");
    (g.finish(), head)
}

/// Conv→Relu→Flatten→Gemm: a classifier without any pooling.
pub fn unpooled() -> ModelProto {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut g = GraphBuilder::new("unpooled");
    g.input("pixels", &[None, Some(3), Some(8), Some(8)]);
    let w = g.constant("conv.w", &[2, 3, 3, 3], &random(&mut rng, 54));
    let c = g.node(
        "Conv",
        "conv",
        &["pixels", &w],
        vec![
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("pads", Attr::Ints(vec![1; 4])),
        ],
    );
    let r = g.node("Relu", "only_relu", &[&c], vec![]);
    let f = g.node("Flatten", "flatten", &[&r], vec![]);
    let fw = g.constant("fc.w", &[3, 128], &random(&mut rng, 384));
    g.node("Gemm", "logits", &[&f, &fw], vec![("transB", Attr::Int(1))]);
    g.output("logits");
    g.finish()
}

/// A reproducible batch of `n` 3×8×8 inputs in [-1, 1].
pub fn inputs(n: usize) -> Vec<f32> {
    random(&mut rand::rngs::StdRng::seed_from_u64(4), n * 3 * 64)
}
