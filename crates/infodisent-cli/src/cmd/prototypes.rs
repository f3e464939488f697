//! `infodisent prototypes`: each channel's top-k training images, as JSON and pictures.

use super::Global;
use infodisent::dataset::ImageStore;
use infodisent::explain::render::write_prototype_images;
use infodisent::explain::{find_prototypes, session::training_split, top_weighted_channels};
use infodisent::runs::PROTOTYPES_FILE;
use std::path::PathBuf;

/// Options of `infodisent prototypes`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    trained: super::HeadArgs,
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
    let started = std::time::Instant::now();
    let protos = find_prototypes(&cache, &head, &split, args.k)?;
    let search_s = started.elapsed().as_secs_f64();
    let out = args
        .out
        .unwrap_or_else(|| infodisent::runs::folder_of(&args.trained.head));
    protos.save(out.join(PROTOTYPES_FILE))?;
    let channels = top_weighted_channels(&head, args.render);
    let mut written = Vec::new();
    if args.render > 0 {
        let pre = cache.manifest().preprocess.clone();
        written = write_prototype_images(
            &protos,
            &channels,
            &out.join("prototypes"),
            &ImageStore::default(),
            &pre,
            128,
        )?;
    }
    if global.json {
        return super::print_json(&serde_json::json!({
            "prototypes": out.join(PROTOTYPES_FILE),
            "split": split,
            "channels": protos.channels.len(),
            "k": args.k,
            "search_seconds": search_s,
            "rendered_channels": channels,
            "images_written": written.len(),
        }));
    }
    println!(
        "prototypes of {} channels (top {} of split `{split}`) in {search_s:.1} s",
        protos.channels.len(),
        args.k
    );
    println!("  {}", out.join(PROTOTYPES_FILE).display());
    if !written.is_empty() {
        println!(
            "  {} pictures of {} channels in {}",
            written.len(),
            channels.len(),
            out.join("prototypes").display()
        );
    }
    for &ch in channels.iter().take(10) {
        let p = &protos.channels[ch];
        let best = p.positive.first().map_or("none".to_owned(), |b| {
            format!("{:.3} ({})", b.score, b.path)
        });
        println!("  channel {ch:5}: best positive {best}");
    }
    Ok(())
}
