//! `infodisent`: the command-line interface. Every command is a thin wrapper over a library call.

mod cmd;

use clap::{CommandFactory, Parser, Subcommand};

const AFTER_HELP: &str = "\
Typical session:
  infodisent extract --model efficientnet-lite0 --data fashion-mnist --cache runs/fm/cache
  infodisent train   --cache runs/fm/cache --out runs/fm/head
  infodisent explain --cache runs/fm/cache --head runs/fm/head some.png
  infodisent report  --cache runs/fm/cache --head runs/fm/head --out runs/fm/report
  infodisent demo    (all of the above on the default model and data)
  infodisent serve   --head runs/fm/head      (a live viewer: drop an image, see why)

Exit codes: 0 success, 1 internal or numerical failure, 2 invalid options or configuration,
3 unreadable input (image, dataset, file), 4 unusable model or shape mismatch,
5 corrupt, incomplete or stale cache or checkpoint, 6 a download failed or was forbidden.";

/// Explain pretrained image classifiers with prototypical parts.
#[derive(Parser, Debug)]
#[command(name = "infodisent", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    global: cmd::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole pipeline on the default model and data: extract, train, explain, report.
    Demo(cmd::demo::Args),
    /// Show a model's graph: inputs, outputs, the detected feature map and classifier.
    Inspect(cmd::inspect::Args),
    /// Compute backbone feature maps for a dataset into a resumable cache (in one process, or
    /// as the parts of a cluster job).
    Extract(cmd::extract::Args),
    /// Download ONNX Runtime, the built-in models' weights and class names (and Fashion-MNIST)
    /// now, rather than on first use: for a machine that will later run offline.
    Fetch(cmd::fetch::Args),
    /// Inspect a feature cache: progress per part, what is missing, its content digest.
    #[command(subcommand)]
    Cache(cmd::cache::CacheCommand),
    /// Classify images with the original model and print the top-5 classes.
    Predict(cmd::predict::Args),
    /// Train an InfoDisent head (or a linear probe) on cached features.
    Train(cmd::train::Args),
    /// Train a grid of recipes on one cache and print one table: accuracy, channels for 95 %,
    /// RV, sparsity, seconds (and prototype purity on a `bench parts` dataset).
    Ablate(cmd::ablate::Args),
    /// Evaluate heads on a cached split and compare them.
    Eval(cmd::eval::Args),
    /// Find each channel's prototypes: the training images that activate it most.
    Prototypes(cmd::prototypes::Args),
    /// Explain predictions for images: contributing channels, prototypes, heatmaps.
    Explain(cmd::explain::Args),
    /// Compute the paper's metrics: channels for 95%, RV coefficient, deletion/insertion, pointing.
    Metrics(cmd::metrics::Args),
    /// Build a static HTML report that opens from disk.
    Report(cmd::report::Args),
    /// Browse classes, channels and prototypes in a live viewer, and explain images dropped in.
    Serve(cmd::serve::Args),
    /// Mutual-information decomposition: total, decision-related and redundant maps.
    #[command(subcommand)]
    Mi(cmd::mi::MiCommand),
    /// Benchmarks that print throughput and memory figures.
    #[command(subcommand)]
    Bench(Box<cmd::bench::BenchCommand>),
    /// Print this reference as Markdown: the user guide's docs/book/src/cli.md is its output, and
    /// a test fails when the two differ.
    #[command(hide = true)]
    MarkdownHelp,
}

/// Every command and option as Markdown, the way `--help` words them.
fn markdown_reference() -> String {
    // The typical session is laid out in columns, which Markdown would run into one paragraph.
    let command = Cli::command().after_help(format!("```text\n{AFTER_HELP}\n```"));
    let options = clap_markdown::MarkdownOptions::new()
        .title("Command-line reference".to_owned())
        .show_footer(false);
    clap_markdown::help_markdown_command_custom(&command, &options)
}

fn main() {
    let cli = Cli::parse();
    cli.global.init();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a, &cli.global),
        Command::Inspect(a) => cmd::inspect::run(a, &cli.global),
        Command::Extract(a) => cmd::extract::run(a, &cli.global),
        Command::Cache(c) => cmd::cache::run(c, &cli.global),
        Command::Fetch(a) => cmd::fetch::run(a, &cli.global),
        Command::Predict(a) => cmd::predict::run(a, &cli.global),
        Command::Train(a) => cmd::train::run(a, &cli.global),
        Command::Ablate(a) => cmd::ablate::run(a, &cli.global),
        Command::Eval(a) => cmd::eval::run(a, &cli.global),
        Command::Prototypes(a) => cmd::prototypes::run(a, &cli.global),
        Command::Explain(a) => cmd::explain::run(a, &cli.global),
        Command::Metrics(a) => cmd::metrics::run(a, &cli.global),
        Command::Report(a) => cmd::report::run(a, &cli.global),
        Command::Serve(a) => cmd::serve::run(a, &cli.global),
        Command::Mi(c) => cmd::mi::run(c, &cli.global),
        Command::Bench(c) => cmd::bench::run(*c, &cli.global),
        Command::MarkdownHelp => {
            print!("{}", markdown_reference());
            Ok(())
        }
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        let code = err
            .downcast_ref::<infodisent::Error>()
            .map_or(1, infodisent::Error::exit_code);
        std::process::exit(code);
    }
}
