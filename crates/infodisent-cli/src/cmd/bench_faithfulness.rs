//! `infodisent bench faithfulness`: infodisent's heatmaps beside pytorch-grad-cam and Captum
//! on the same model and images, scored by one implementation.

use super::super::Global;
use infodisent_bench::faithfulness::{
    format_markdown, recipes, run as run_faithfulness, FaithfulnessRequest, TorchModule,
};
use std::path::PathBuf;

/// Options of `infodisent bench faithfulness`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model explained: a built-in name or an ONNX file (the peers need its PyTorch
    /// module, which infodisent builds for efficientnet-lite0/1/2; for an ONNX file, name yours
    /// with --torch-module).
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// The PyTorch module the ONNX model was exported from, for the peers: a Python file and a
    /// function in it that takes no arguments and returns the `nn.Module` with its weights
    /// loaded (e.g. `resnet.py:build`). Its logits are checked against the ONNX model's.
    #[arg(long, value_name = "FILE.py:FUNCTION")]
    pub torch_module: Option<String>,
    /// The submodule of --torch-module whose output is the feature map infodisent reads, the
    /// layer the CAM methods hook (e.g. `layer4`); by default the last one, in the order
    /// forward finishes them, whose output has the feature map's shape.
    #[arg(long, value_name = "NAME", requires = "torch_module")]
    pub torch_layer: Option<String>,
    /// A folder of photos (sub-folders included; no labels needed): every method explains the
    /// model's own top class, and deletion and insertion are scored on the model itself.
    #[arg(long, value_name = "DIR")]
    pub photos: Option<PathBuf>,
    /// Also generate the parts benchmark with N test images per class (4 classes), whose
    /// deciding parts are known, and report each map's mass on them (0: skip).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub parts_per_class: usize,
    /// The Python of the environment holding torch, pytorch-grad-cam and Captum
    /// (`.assets/python/bin/python` after `scripts/setup-python.sh`); without it only
    /// infodisent's maps and the floors are measured.
    #[arg(long, value_name = "PYTHON")]
    pub python: Option<PathBuf>,
    /// Peers on the photos, comma-separated: grad-cam, grad-cam++, score-cam, eigen-cam,
    /// occlusion, integrated-gradients.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "grad-cam,grad-cam++,score-cam,eigen-cam,occlusion,integrated-gradients"
    )]
    pub methods: Vec<String>,
    /// Peers on the parts images (Score-CAM and Occlusion run the model hundreds of times an
    /// image, so they are left out by default).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "grad-cam,grad-cam++,eigen-cam,integrated-gradients"
    )]
    pub parts_methods: Vec<String>,
    /// InfoDisent heads per leg, one per seed; their scores are pooled and the spread of the
    /// per-seed means reported.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Steps of each deletion/insertion curve (RISE uses 224 on 224-pixel inputs).
    #[arg(long, default_value_t = 32)]
    pub steps: usize,
    /// Images per batch when explaining, for infodisent's backbone runs and for the peers
    /// (`--batch` is the heads' training batch).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub image_batch: usize,
    /// Explain only the first N photos (sorted by path).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Folder for caches, heads, the peers' maps, `faithfulness.json` and `faithfulness.md`;
    /// every stage resumes.
    #[arg(long)]
    pub out: PathBuf,
    /// The recipe of the parts images' heads; the photos' heads are fitted to the model's own
    /// decisions (`--target original` and its defaults, no validation hold-out unless
    /// --val-fraction is given), with the same flags on top.
    #[command(flatten)]
    pub recipe: infodisent::train::TrainOverrides,
    #[command(flatten)]
    pub preprocess: super::super::args::PreprocessArgs,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let (photo_recipe, parts_recipe) = recipes(&args.recipe)?;
    let request = FaithfulnessRequest {
        model: args.preprocess.spec(&args.model, None, global),
        torch_module: args
            .torch_module
            .as_deref()
            .map(|m| TorchModule::parse(m, args.torch_layer.clone()))
            .transpose()?,
        photos: args.photos,
        parts_per_class: args.parts_per_class,
        python: args.python,
        methods: args.methods,
        parts_methods: args.parts_methods,
        seeds: args.seeds,
        steps: args.steps,
        batch: args.image_batch,
        limit: args.limit,
        out: args.out.clone(),
        photo_recipe,
        parts_recipe,
    };
    let report = run_faithfulness(&request)?;
    let markdown = format_markdown(&report);
    infodisent::fsutil::write_json_atomic(args.out.join("faithfulness.json"), &report)?;
    infodisent::fsutil::write_atomic(args.out.join("faithfulness.md"), markdown.as_bytes())?;
    if global.json {
        return super::super::print_json(&report);
    }
    println!(
        "cpu: {}; {} threads, batch {}",
        report.cpu, report.threads, report.batch
    );
    println!("scored on {}", report.scoring);
    if let Some(d) = report.torch_onnx_max_logit_diff {
        println!("PyTorch module vs ONNX model: max |logit difference| {d:.2e}");
    }
    if let Some(layer) = &report.torch_layer {
        println!("the CAM methods hook the PyTorch module's `{layer}`");
    }
    if let Some(a) = report.head_agreement {
        println!(
            "InfoDisent heads agree with the model's top class on {:.1} % of the photos",
            100.0 * a
        );
    }
    print!("\n{markdown}");
    Ok(())
}
