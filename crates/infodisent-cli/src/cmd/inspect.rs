//! `infodisent inspect`: a model's inputs, outputs, detected feature map, classifier and FLOPs.

use super::Global;
use infodisent::onnx::model::{FeatureLayout, OriginalHeadKind};

/// Options of `infodisent inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A built-in name (efficientnet-lite0, -lite1, -lite2) or an .onnx file.
    pub model: String,
    /// Take features from this node or value instead of the detected one.
    #[arg(long)]
    pub feature_node: Option<String>,
    #[command(flatten)]
    pub preprocess: super::args::PreprocessArgs,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    // Loading a backbone also runs a probe image when the graph does not tell the feature shape.
    let spec = args
        .preprocess
        .spec(&args.model, args.feature_node.as_deref(), global);
    let backbone = spec.load()?;
    let info = infodisent::onnx::inspect(backbone.model(), backbone.one_at_a_time())?;
    if global.json {
        return super::print_json(&info);
    }
    println!("model          {} ({} nodes)", info.name, info.nodes);
    for p in &info.inputs {
        println!("input          {} [{}]", p.name, p.shape.join(", "));
    }
    for p in &info.outputs {
        let role = if p.role.is_empty() {
            String::new()
        } else {
            format!("  ({})", p.role)
        };
        let shape = if p.shape.is_empty() {
            "?".to_owned()
        } else {
            p.shape.join(", ")
        };
        println!("output         {} [{shape}]{role}", p.name);
    }
    let layout = match info.layout {
        FeatureLayout::Nchw => "NCHW map".to_owned(),
        FeatureLayout::Nhwc => "NHWC map".to_owned(),
        FeatureLayout::Tokens { skip } => format!("tokens, first {skip} dropped, rest as a grid"),
    };
    println!("feature node   {} ({layout})", info.feature_node);
    println!("  why          {}", info.reason);
    let [d, h, w] = info.feature_shape;
    println!("feature shape  {d} × {h} × {w}");
    let kind = match info.head.kind {
        OriginalHeadKind::Linear => "linear",
        OriginalHeadKind::ClassToken => "linear on the class token",
        OriginalHeadKind::NormLinear => "LayerNorm + linear",
        OriginalHeadKind::Other => "not a single linear layer",
        OriginalHeadKind::Missing => "none",
    };
    println!("head           {kind}: {}", info.head.detail);
    match info.classifier {
        Some([c, dim]) => println!("classifier     {c} classes × {dim} channels (CAM available)"),
        None => println!("classifier     none usable for CAM"),
    }
    match info.original_classes {
        Some(c) => println!("logits         {c} classes, cached from the graph's output"),
        None => println!("logits         the graph outputs none"),
    }
    if info.one_at_a_time {
        println!("batch          1 only (the exporter fixed it): images run one at a time");
    }
    if let Some(dir) = &info.external_data {
        println!("weights        external data in {}", dir.display());
    }
    println!("preprocess     {}", info.preprocess);
    match (info.flops, &info.flops_error) {
        (Some(f), _) => println!(
            "FLOPs          {:.3} G per image ({:.3} G multiply-adds)",
            f / 1e9,
            f / 2e9
        ),
        (None, Some(e)) => println!("FLOPs          unknown: {e}"),
        (None, None) => println!("FLOPs          unknown"),
    }
    Ok(())
}
