//! `infodisent prototypes`: each channel's top-k training images, as JSON and pictures.

use super::Global;
use infodisent::explain::render::write_prototypes;
use infodisent::explain::session::training_split;
use std::path::PathBuf;

/// Options of `infodisent prototypes`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    trained: super::args::HeadArgs,
    /// Prototypes per channel and polarity.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Split to search (default: `train`).
    #[arg(long)]
    split: Option<String>,
    /// Output folder for `prototypes.json` and `prototypes/*.png` (default: the head folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draw crops and full images for each class's N most heavily weighted channels (0: none).
    #[arg(long, default_value_t = 5)]
    render: usize,
}

/// Runs the command.
pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let cache = args.trained.open_cache()?;
    let head = args.trained.load_head()?;
    let split = match args.split {
        Some(s) => s,
        None => training_split(&cache)?,
    };
    let out = args
        .out
        .unwrap_or_else(|| infodisent::runs::folder_of(&args.trained.head));
    let done = write_prototypes(&cache, &head, &split, args.k, &out, args.render)?;
    if global.json {
        return super::print_json(&done);
    }
    println!(
        "prototypes of {} channels (top {} of split `{split}`) in {:.1} s",
        done.channels, done.k, done.search_seconds
    );
    println!("  {}", done.prototypes.display());
    if done.images_written > 0 {
        println!(
            "  {} pictures of {} channels in {}",
            done.images_written,
            done.rendered_channels.len(),
            out.join("prototypes").display()
        );
    }
    for &ch in done.rendered_channels.iter().take(10) {
        let p = &done.found.channels[ch];
        let best = p.positive.first().map_or("none".to_owned(), |b| {
            format!("{:.3} ({})", b.score, b.path)
        });
        println!("  channel {ch:5}: best positive {best}");
    }
    Ok(())
}
