//! Feature-map and classifier detection on small graphs of known weights (CNN and ViT style),
//! the `--feature-node` override, wrong model files, and FLOP counting.

mod onnx_common;

use infodisent::engine::Backbone;
use infodisent::onnx::model::FeatureLayout;
use infodisent::onnx::{self, count_flops};
use infodisent::Error;
use onnx_protobuf::Message;
use std::path::Path;

fn prepare(
    model: onnx_protobuf::ModelProto,
    feature_node: Option<&str>,
) -> infodisent::Result<infodisent::onnx::model::PreparedModel> {
    onnx::prepare(model, Path::new("test.onnx"), "test", feature_node)
}

#[test]
fn resnet_style_graph_exposes_its_last_map_and_classifier() {
    let (graph, head) = onnx_common::resnet();
    let model = prepare(graph, None).unwrap();
    assert_eq!(model.feature_node, "final_relu");
    assert_eq!(model.layout, FeatureLayout::Nchw);
    assert_eq!(model.feature_shape, [4, 8, 8]);
    assert_eq!(model.logits_output.as_deref(), Some("logits"));
    let c = model.classifier.clone().unwrap();
    assert_eq!((c.classes, c.dim), (5, 4));
    assert_eq!(c.weight, head.weight);
    assert_eq!(c.bias, head.bias);
    assert_eq!(model.preprocess.crop, 8);

    let mut net = Backbone::from_prepared(model, 1).unwrap();
    let out = net.run(&onnx_common::inputs(3), 3).unwrap();
    let logits = out.logits.unwrap();
    assert_eq!((out.features.len(), logits.len()), (3 * 4 * 64, 15));
    for n in 0..3 {
        let pooled: Vec<f32> = out.features[n * 256..(n + 1) * 256]
            .chunks(64)
            .map(|m| m.iter().sum::<f32>() / 64.0)
            .collect();
        assert!(
            out.features[n * 256..(n + 1) * 256]
                .iter()
                .all(|&v| v >= 0.0),
            "ReLU output"
        );
        for (a, b) in c.logits(&pooled).iter().zip(&logits[n * 5..(n + 1) * 5]) {
            assert!(
                (a - b).abs() < 1e-4,
                "classifier(avgpool(features)) {a} vs graph logits {b}"
            );
        }
    }
}

#[test]
fn vit_style_graph_gives_a_token_grid() {
    for matmul_head in [false, true] {
        let (graph, head) = onnx_common::vit(matmul_head);
        let model = prepare(graph, None).unwrap();
        assert_eq!(model.feature_node, "final_norm");
        assert_eq!(model.layout, FeatureLayout::Tokens { skip: 1 });
        assert_eq!(model.feature_shape, [6, 2, 2]);
        let c = model.classifier.clone().unwrap();
        assert_eq!((c.classes, c.dim), (5, 6));
        for (a, b) in c.weight.iter().zip(&head.weight) {
            assert!((a - b).abs() < 1e-7);
        }
        assert_eq!(c.bias, head.bias);

        let mut net = Backbone::from_prepared(model, 1).unwrap();
        let out = net.run(&onnx_common::inputs(2), 2).unwrap();
        assert_eq!(out.features.len(), 2 * 6 * 4);
        assert_eq!(out.logits.unwrap().len(), 10);
        // Each grid cell is a layer-normalised token: over its 6 channels, (x − shift)/scale has
        // mean 0 and variance 1, which pins down that channels and cells were not mixed up.
        let (scale, shift) = norm_params(matmul_head);
        for n in 0..2 {
            for cell in 0..4 {
                let z: Vec<f32> = (0..6)
                    .map(|d| (out.features[n * 24 + d * 4 + cell] - shift[d]) / scale[d])
                    .collect();
                let mean = z.iter().sum::<f32>() / 6.0;
                let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 6.0;
                assert!(
                    mean.abs() < 1e-3 && (var - 1.0).abs() < 1e-2,
                    "cell {cell}: mean {mean} var {var}"
                );
            }
        }
    }
}

/// The LayerNormalization scale and bias of the test ViT.
fn norm_params(matmul_head: bool) -> (Vec<f32>, Vec<f32>) {
    let (graph, _) = onnx_common::vit(matmul_head);
    let g = graph.graph.unwrap();
    let read = |name: &str| {
        infodisent::onnx::graph::tensor_f32(
            g.initializer.iter().find(|t| t.name == name).unwrap(),
            None,
        )
        .unwrap()
    };
    (read("norm.scale"), read("norm.bias"))
}

#[test]
fn feature_node_override_by_node_or_value_name() {
    let (graph, _) = onnx_common::resnet();
    let model = prepare(graph.clone(), Some("first_relu")).unwrap();
    assert_eq!(model.feature_node, "first_relu");
    assert_eq!(model.feature_shape, [4, 8, 8]);
    assert!(
        model.classifier.is_some(),
        "the original head is still read"
    );
    let mut net = Backbone::from_prepared(model, 1).unwrap();
    let early = net.run(&onnx_common::inputs(1), 1).unwrap().features;
    let mut default = Backbone::from_prepared(prepare(graph.clone(), None).unwrap(), 1).unwrap();
    let late = default.run(&onnx_common::inputs(1), 1).unwrap().features;
    assert_ne!(early, late, "the override must expose a different map");

    let by_value = prepare(graph.clone(), Some("conv2")).unwrap();
    assert_eq!(by_value.feature_output, "conv2");

    let err = prepare(graph, Some("no_such_node")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Model { .. }));
    assert!(
        msg.contains("no_such_node") && msg.contains("final_relu"),
        "{msg}"
    );
}

#[test]
fn graph_without_pooling_lists_candidates() {
    let err = prepare(onnx_common::unpooled(), None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Model { .. }), "{msg}");
    assert!(
        msg.contains("--feature-node") && msg.contains("only_relu") && msg.contains("conv"),
        "{msg}"
    );
    // …and the suggested node works.
    let model = prepare(onnx_common::unpooled(), Some("only_relu")).unwrap();
    assert_eq!(model.feature_shape, [2, 8, 8]);
    assert!(model.classifier.is_none());
}

#[test]
fn wrong_model_files_are_model_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = onnx::prepare_file(&path, None).unwrap_err();
        assert!(matches!(err, Error::Model { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
        err.to_string()
    };
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    check("noise.onnx", &noise);
    check("empty.onnx", b"");
    check("text.onnx", b"this is not a model\n");
    let lite0 = infodisent::models::load("efficientnet-lite0", None).unwrap();
    for cut in [100, lite0.onnx.len() / 2, lite0.onnx.len() - 3] {
        check("truncated.onnx", &lite0.onnx[..cut]);
    }
    let (mut graph, _) = onnx_common::resnet();
    let g = graph.graph.as_mut().unwrap();
    g.input[0] = infodisent::onnx::build::value_info("pixels", 1, Some(&[None, Some(192)]));
    let msg = check("flat_input.onnx", &graph.write_to_bytes().unwrap());
    assert!(msg.contains("[N,3,H,W]"), "{msg}");
    assert!(Backbone::load(dir.path().join("missing.onnx").to_str().unwrap(), None, 1).is_err());
}

#[test]
fn run_rejects_inputs_of_the_wrong_length() {
    let (graph, _) = onnx_common::resnet();
    let mut net = Backbone::from_prepared(prepare(graph, None).unwrap(), 1).unwrap();
    assert!(matches!(
        net.run(&onnx_common::inputs(2), 3),
        Err(Error::Shape(_))
    ));
    assert!(matches!(net.run(&[], 0), Err(Error::Shape(_))));
}

#[test]
fn flops_follow_the_layer_arithmetic() {
    let (graph, _) = onnx_common::resnet();
    let model = prepare(graph, None).unwrap();
    // conv1 2·(4·8·8)·27 + relu 256 + conv2 2·256·36 + add 256 + relu 256 + pool 256 + gemm 2·5·4
    let want = 13824.0 + 256.0 + 18432.0 + 256.0 + 256.0 + 256.0 + 40.0;
    assert_eq!(count_flops(&model, 1).unwrap(), want);
    assert_eq!(count_flops(&model, 4).unwrap(), 4.0 * want);
}

#[test]
fn lite0_graph_detection_and_flops() {
    let model = infodisent::models::load("efficientnet-lite0", None).unwrap();
    assert_eq!(model.feature_node, "head_relu6");
    assert_eq!(model.layout, FeatureLayout::Nchw);
    assert_eq!(model.feature_shape, [1280, 7, 7]);
    let c = model.classifier.as_ref().unwrap();
    assert_eq!((c.classes, c.dim), (1000, 1280));
    assert_eq!(model.class_names.as_ref().map(Vec::len), Some(1000));
    // Published: about 0.4 G multiply-adds per 224² image.
    let flops = count_flops(&model, 1).unwrap();
    assert!((0.75e9..0.9e9).contains(&flops), "{flops}");
    // The serialized graph round-trips through the file path too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lite0.onnx");
    std::fs::write(&path, &model.onnx).unwrap();
    let again = onnx::prepare_file(&path, None).unwrap();
    assert_eq!(
        (again.feature_node.as_str(), again.feature_shape),
        ("head_relu6", [1280, 7, 7])
    );
    assert_eq!(again.classifier.as_ref(), Some(c));
}
