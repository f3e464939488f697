//! `infodisent inspect`: a model's inputs, outputs, detected feature map, classifier and FLOPs.

use super::Global;
use infodisent::engine::Backbone;
use infodisent::model::FeatureLayout;

/// Options of `infodisent inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A built-in name (efficientnet-lite0, -lite1, -lite2) or an .onnx file.
    pub model: String,
    /// Take features from this node or value instead of the detected one.
    #[arg(long)]
    pub feature_node: Option<String>,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    // Loading a backbone also runs a probe image when the graph does not tell the feature shape.
    let backbone = Backbone::load(&args.model, args.feature_node.as_deref(), global.threads())?;
    let info = infodisent::onnx::inspect(backbone.model())?;
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
        FeatureLayout::Tokens { skip } => format!("tokens, first {skip} dropped, rest as a grid"),
    };
    println!("feature node   {} ({layout})", info.feature_node);
    let [d, h, w] = info.feature_shape;
    println!("feature shape  {d} × {h} × {w}");
    match info.classifier {
        Some([c, dim]) => println!("classifier     {c} classes × {dim} channels"),
        None => println!("classifier     not found"),
    }
    let p = &info.preprocess;
    println!(
        "preprocess     resize {}, crop {}, {:?}",
        p.resize, p.crop, p.normalize
    );
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
