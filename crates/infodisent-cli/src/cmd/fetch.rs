//! `infodisent fetch`: download ONNX Runtime and the built-in models' files ahead of time.

use super::Global;
use std::path::PathBuf;

/// Options of `infodisent fetch`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A built-in model whose weights to fetch; repeat for several (default: all three).
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    /// Leave out the Fashion-MNIST dataset (30 MB), which `--data fashion-mnist` reads.
    #[arg(long)]
    pub no_fashion_mnist: bool,
    /// Fetch into this folder instead of the one the library reads (then point
    /// INFODISENT_ASSETS at it, on this machine or after copying it to an offline one).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let names: Vec<&str> = args.models.iter().map(String::as_str).collect();
    let extras = infodisent::assets::fetch::Extras {
        fashion_mnist: !args.no_fashion_mnist,
        onnxruntime: true,
    };
    let (dir, files) = infodisent::assets::fetch::fetch_builtins(
        args.dest.as_deref(),
        (!names.is_empty()).then_some(&names[..]),
        extras,
    )?;
    if global.json {
        return super::print_json(&serde_json::json!({ "folder": dir, "files": files }));
    }
    println!("{} files in {}", files.len(), dir.display());
    Ok(())
}
