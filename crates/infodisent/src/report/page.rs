//! The page code the static report and the live viewer share: the frame (inline CSS, nothing
//! fetched, so a report opens from disk with no network), and the parts both show (class
//! tables, prototype strips, explained images), linking through [`Links`].

use crate::explain::{ClassExplanation, ImageExplanation, Polarity, Prototypes};
use maud::{html, Markup, PreEscaped, DOCTYPE};

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
nav{background:#1d2b3a;padding:.6em 1.2em}nav a{color:#e8eef5;margin-right:1.4em;text-decoration:none;font-weight:600}
main{max-width:1200px;margin:auto;padding:1em 1.5em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.3em .7em;text-align:right}
th{background:#eef2f6}td:first-child,th:first-child{text-align:left}
.muted{color:#667}.pos{color:#b3261e}.neg{color:#1e4fb3}
.gallery{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}
.gallery figure{margin:0;text-align:center;font-size:.75em}
.card{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:.8em;margin:.8em 0}
img{image-rendering:auto;max-width:100%}
";

/// A complete HTML page with the report's navigation; `depth` is how many folders below the
/// report root the page sits, so links stay relative and work from disk.
pub fn page(title: &str, depth: usize, body: Markup) -> String {
    let up = "../".repeat(depth);
    let nav: Vec<(String, &str)> = [
        ("index.html", "Summary"),
        ("classes.html", "Classes"),
        ("prototypes.html", "Prototypes"),
        ("images.html", "Images"),
        ("mi.html", "Information maps"),
    ]
    .into_iter()
    .map(|(file, label)| (format!("{up}{file}"), label))
    .collect();
    frame(title, &nav, body)
}

/// A complete HTML page: the shared style, a navigation bar of `(href, label)` links and `body`
/// under the title.
pub fn frame(title: &str, nav: &[(String, &str)], body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · infodisent" }
                // No icon to fetch: a report opens from disk, and the viewer has none to serve.
                link rel="icon" href="data:,";
                style { (PreEscaped(CSS)) }
            }
            body {
                nav { @for (href, label) in nav { a href=(href) { (label) } } }
                main { h1 { (title) } (body) }
            }
        }
    }
    .into_string()
}

/// A number shown with a fixed count of decimals.
pub fn num(x: f64, decimals: usize) -> String {
    format!("{x:.decimals$}")
}

/// A fraction shown as a percentage.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// Where the shared page parts link to: files beside a static report, or the viewer's routes.
/// Every link is relative to the page that holds it, so pages work from disk and behind a
/// proxy that serves them under a prefix.
pub trait Links {
    /// The page of class `class`.
    fn class_page(&self, class: usize) -> String;
    /// The page of channel `channel`, where there is one.
    fn channel_page(&self, channel: usize) -> Option<String>;
    /// Prototype `rank` of `channel` on the side `polarity`: its crop, or the full image with
    /// the box when `full`.
    fn prototype(&self, channel: usize, polarity: Polarity, rank: usize, full: bool) -> String;
}

/// The name of class `c`, or `class c` where the cache has no names.
pub fn class_name(names: &[String], c: usize) -> String {
    names
        .get(c)
        .cloned()
        .unwrap_or_else(|| format!("class {c}"))
}

/// A link to channel `k`'s page where there is one, else its number.
pub fn channel_link(links: &dyn Links, k: usize) -> Markup {
    match links.channel_page(k) {
        Some(href) => html! { a href=(href) { (k) } },
        None => html! { (k) },
    }
}

/// One channel's prototypes of one polarity as a strip of crops, each linking to the full image
/// with its box.
pub fn proto_strip(
    links: &dyn Links,
    prototypes: &Prototypes,
    names: &[String],
    channel: usize,
    polarity: Polarity,
    tile: u32,
) -> Markup {
    let Some(entry) = prototypes.channels.get(channel) else {
        return html! {};
    };
    let list = polarity.pick(&entry.positive, &entry.negative);
    html! {
        div.gallery {
            @for (rank, p) in list.iter().enumerate() {
                figure {
                    a href=(links.prototype(channel, polarity, rank, true)) {
                        img src=(links.prototype(channel, polarity, rank, false)) width=(tile) height=(tile) alt=(format!("channel {channel} prototype {rank}"));
                    }
                    figcaption { (class_name(names, p.label as usize)) br; (num(p.score as f64, 2)) }
                }
            }
        }
    }
}

/// The classes ranked by accuracy, best first, with their strongest channels.
pub fn classes_table(links: &dyn Links, classes: &[ClassExplanation], names: &[String]) -> Markup {
    let accuracy = |c: &ClassExplanation| c.correct as f64 / c.images.max(1) as f64;
    let mut ranked: Vec<&ClassExplanation> = classes.iter().collect();
    ranked.sort_by(|a, b| {
        accuracy(b)
            .total_cmp(&accuracy(a))
            .then(a.class.cmp(&b.class))
    });
    html! {
        table {
            tr { th { "class" } th { "images" } th { "accuracy" } th { "mean logit" } th { "top channels" } }
            @for cl in ranked {
                tr {
                    td { a href=(links.class_page(cl.class)) { (class_name(names, cl.class)) } }
                    td { (cl.images) }
                    td { (pct(accuracy(cl))) }
                    td { (num(cl.mean_logit as f64, 2)) }
                    td { @for ch in &cl.channels { (channel_link(links, ch.channel)) " " } }
                }
            }
        }
    }
}

/// A class's channels, ranked by mean contribution, each with its positive prototypes.
pub fn class_channels(
    links: &dyn Links,
    class: &ClassExplanation,
    prototypes: &Prototypes,
    names: &[String],
    tile: u32,
) -> Markup {
    html! {
        @for ch in &class.channels {
            div.card {
                b { "channel " (channel_link(links, ch.channel)) } span.muted { " — weight " (num(ch.weight as f64, 3)) ", mean contribution " (num(ch.mean_contribution as f64, 3)) ", in the top-" (class.channels.len()) " of " (pct(ch.top_frequency as f64)) " of images" }
                (proto_strip(links, prototypes, names, ch.channel, Polarity::Positive, tile))
            }
        }
    }
}

/// The channels deciding one image, for (red) and against (blue).
pub fn contribution_table(links: &dyn Links, ex: &ImageExplanation) -> Markup {
    html! {
        table {
            tr { th { "channel" } th { "contribution" } th { "share" } }
            @for x in &ex.positive { tr.pos { td { (channel_link(links, x.channel)) } td { (num(x.contribution as f64, 3)) } td { (pct(x.share as f64)) } } }
            @for x in &ex.negative { tr.neg { td { (channel_link(links, x.channel)) } td { (num(x.contribution as f64, 3)) } td { (pct(x.share as f64)) } } }
        }
    }
}

/// An image's folder and file name (its class folder, in a class-sorted dataset): what tells
/// a reader which image it is, without the machine's path to the dataset.
pub fn short_source(source: &str) -> String {
    let parts: Vec<&str> = source.rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// One explained image: its decision in a sentence, its figure and the deciding channels.
pub fn image_card(
    links: &dyn Links,
    ex: &ImageExplanation,
    names: &[String],
    figure: Option<&str>,
) -> Markup {
    html! {
        div.card {
            p {
                b title=(ex.source) { (short_source(&ex.source)) } " — predicted " b { (class_name(names, ex.predicted)) }
                " (p = " (num(ex.probability as f64, 3)) ")"
                @if let Some(l) = ex.label { ", true class " a href=(links.class_page(l)) { (class_name(names, l)) } }
                "; logit " (num(ex.logit as f64, 3)) " = Σ contributions + bias " (num(ex.bias as f64, 3)) "; " (ex.channels_for_95) " channels carry 95%."
            }
            @if let Some(f) = figure { img src=(f) alt=(format!("explanation of {}", ex.source)); }
            (contribution_table(links, ex))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_image_is_named_by_its_folder_and_file_not_the_machine_path() {
        assert_eq!(
            super::short_source("/home/me/data/cub/001.Albatross/a.jpg"),
            "001.Albatross/a.jpg"
        );
        assert_eq!(super::short_source("a.jpg"), "a.jpg");
    }
}
