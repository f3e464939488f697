//! The viewer's pages, made of the report's shared parts ([`crate::report::page`]) plus what
//! only a live viewer has: channel pages, a class's right and wrong test images, and the page
//! that explains an uploaded image. Every link is relative, so the pages work under any prefix.

use super::viewer::{HeadView, Viewer};
use crate::explain::{ImageExplanation, Polarity};
use crate::report::page::{
    channel_link, class_channels, class_name, classes_table, frame, image_card, num, pct,
    proto_strip, Links,
};
use maud::{html, Markup, PreEscaped};

/// Prototype tiles and thumbnails, in pixels.
const TILE: u32 = 112;
/// Test images listed per class and side (right, wrong).
const LISTED: usize = 24;

/// Links from a page to the routes of head `h`; `up` leads from the page to the server root.
pub struct ViewerLinks {
    head: String,
}

impl ViewerLinks {
    /// Links for head `h` from a page `depth` folders below the root.
    pub fn new(h: usize, depth: usize) -> Self {
        ViewerLinks {
            head: format!("{}{h}/", "../".repeat(depth)),
        }
    }

    fn png(&self, name: &str) -> String {
        format!("{}png/{name}.png", self.head)
    }

    fn item_page(&self, i: usize) -> String {
        format!("{}image/{i}", self.head)
    }
}

impl Links for ViewerLinks {
    fn class_page(&self, class: usize) -> String {
        format!("{}class/{class}", self.head)
    }
    fn channel_page(&self, channel: usize) -> Option<String> {
        Some(format!("{}channel/{channel}", self.head))
    }
    fn prototype(&self, channel: usize, polarity: Polarity, rank: usize, full: bool) -> String {
        let side = polarity.pick("pos", "neg");
        let kind = if full { "full" } else { "crop" };
        self.png(&format!("proto-{channel}-{side}-{rank}-{kind}"))
    }
}

fn navigation(v: &Viewer, depth: usize) -> Vec<(String, &'static str)> {
    let up = "../".repeat(depth);
    let mut nav = vec![
        (format!("{up}./"), "Heads"),
        (format!("{up}explain"), "Explain your image"),
    ];
    if v.heads.len() == 1 {
        nav.insert(1, (format!("{up}0/"), "Classes"));
    }
    nav
}

fn heads_table(v: &Viewer) -> Markup {
    html! {
        table {
            tr { th { "head" } th { "split" } th { "images" } th { "top-1" } th { "channels" } }
            @for (h, view) in v.heads.iter().enumerate() {
                tr {
                    td { a href=(format!("{h}/")) { (view.name) } }
                    td { (view.split) }
                    td { (view.predictions.len()) }
                    td { (pct(view.accuracy())) }
                    td { (view.session.explainer.head.dim) }
                }
            }
        }
    }
}

/// `/`: the model, the heads, and the first head's classes.
pub fn home(v: &Viewer) -> String {
    let m = v.cache().manifest();
    let body = html! {
        div.card {
            p { "Model " b { (m.model) } ", features from " code { (m.feature_node) } " of shape "
                (format!("{}×{}×{}", m.feature_shape[0], m.feature_shape[1], m.feature_shape[2]))
                " at " (m.input_size) " px; " (m.classes.len()) " classes." }
            p { a href="explain" { b { "Explain your own image →" } } }
            @if let Err(why) = &v.backbone { p.muted { "Uploads are off: " (why) } }
        }
        h2 { "Heads" }
        (heads_table(v))
        h2 { "Classes of " (v.heads[0].name) ", best recognised first" }
        (classes_table(&ViewerLinks::new(0, 0), &v.heads[0].classes, v.class_names()))
    };
    frame("infodisent viewer", &navigation(v, 0), body)
}

/// `/{h}/`: one head's classes ranked by accuracy.
pub fn head(v: &Viewer, h: usize) -> String {
    let view = &v.heads[h];
    let body = html! {
        p.muted { (view.predictions.len()) " images of " (view.split) ", top-1 " (pct(view.accuracy())) ". Classes ranked by accuracy, best first." }
        (classes_table(&ViewerLinks::new(h, 1), &view.classes, v.class_names()))
        h2 { "How alike the deciding channels are" }
        p.muted { "|correlation| over images between the pooled values of the channels the decisions use, grouped by class: left rotated by U, right the backbone's own channels of the same numbers. Disentangled channels leave the left one white off the diagonal." }
        (maud::PreEscaped(&view.correlation))
    };
    frame(&format!("Classes · {}", view.name), &navigation(v, 1), body)
}

fn thumbnails(links: &ViewerLinks, view: &HeadView, items: &[usize], names: &[String]) -> Markup {
    html! {
        div.gallery {
            @for &i in items {
                figure {
                    a href=(links.item_page(i)) { img src=(links.png(&format!("thumb-{i}"))) width=(TILE) height=(TILE) alt=(format!("test image {i}")); }
                    figcaption { "#" (i) br; "→ " (class_name(names, view.predictions[i])) }
                }
            }
        }
    }
}

/// `/{h}/class/{c}`: the class's channels with prototypes, then its test images right and wrong.
pub fn class(v: &Viewer, h: usize, c: usize) -> String {
    let view = &v.heads[h];
    let names = v.class_names();
    let links = ViewerLinks::new(h, 2);
    let Some(summary) = view.classes.iter().find(|x| x.class == c) else {
        return not_found(v, 2, &format!("class {c}"));
    };
    let (right, wrong) = view.items_of(c);
    let body = html! {
        p { (summary.images) " test images, " (summary.correct) " classified correctly; mean logit " (num(summary.mean_logit as f64, 2)) "." }
        h2 { "The channels it rests on" }
        (class_channels(&links, summary, &view.session.prototypes, names, TILE))
        h2 { "Misclassified (" (wrong.len()) ")" }
        (thumbnails(&links, view, &wrong[..wrong.len().min(LISTED)], names))
        h2 { "Classified correctly (" (right.len()) ")" }
        (thumbnails(&links, view, &right[..right.len().min(LISTED)], names))
    };
    frame(&class_name(names, c), &navigation(v, 2), body)
}

/// `/{h}/channel/{k}`: the channel's training prototypes, both sides, and the classes using it.
pub fn channel(v: &Viewer, h: usize, k: usize) -> String {
    let view = &v.heads[h];
    let names = v.class_names();
    let links = ViewerLinks::new(h, 2);
    let protos = &view.session.prototypes;
    if k >= protos.channels.len() {
        return not_found(v, 2, &format!("channel {k}"));
    }
    let users = view.users_of(k);
    let full = |polarity: Polarity| {
        let list = polarity.pick(&protos.channels[k].positive, &protos.channels[k].negative);
        html! { div.gallery { @for rank in 0..list.len() {
            img src=(links.prototype(k, polarity, rank, true)) width="224" alt=(format!("channel {k} prototype {rank} with its box"));
        } } }
    };
    let body = html! {
        p.muted { "The training images (" (protos.split) ") where channel " (k) " fires most (positive) and least (negative), the pooled cell boxed. Crops first, then the full images." }
        h2.pos { "Positive prototypes" }
        (proto_strip(&links, protos, names, k, Polarity::Positive, TILE))
        (full(Polarity::Positive))
        h2.neg { "Negative prototypes" }
        (proto_strip(&links, protos, names, k, Polarity::Negative, TILE))
        (full(Polarity::Negative))
        h2 { "Classes that use it (" (users.len()) ")" }
        table {
            tr { th { "class" } th { "weight" } }
            @for (c, w) in &users { tr { td { a href=(links.class_page(*c)) { (class_name(names, *c)) } } td { (num(*w as f64, 3)) } } }
        }
    };
    frame(
        &format!("Channel {k} · {}", view.name),
        &navigation(v, 2),
        body,
    )
}

/// `/{h}/image/{i}`: a cached test image's explanation.
pub fn item(v: &Viewer, h: usize, i: usize, ex: &ImageExplanation) -> String {
    let links = ViewerLinks::new(h, 2);
    let figure = links.png(&format!("item-{i}"));
    let body = html! {
        (image_card(&links, ex, v.class_names(), Some(&figure)))
        p.muted { "Channels: " @for c in ex.positive.iter().chain(&ex.negative) { (channel_link(&links, c.channel)) " " } }
    };
    frame(
        &format!("Test image {i} · {}", v.heads[h].name),
        &navigation(v, 2),
        body,
    )
}

/// A page saying `what` does not exist.
pub fn not_found(v: &Viewer, depth: usize, what: &str) -> String {
    frame(
        "Not found",
        &navigation(v, depth),
        html! { p { "There is no " (what) " here." } },
    )
}

const UPLOAD_SCRIPT: &str = include_str!("upload.js");

/// `/explain`: drop or pick an image; every head explains it, side by side.
pub fn upload(v: &Viewer) -> String {
    let heads: Vec<String> = v.heads.iter().map(|h| h.name.clone()).collect();
    let config = serde_json::json!({ "heads": heads, "classes": v.class_names() });
    let body = html! {
        @if let Err(why) = &v.backbone { p.neg { "Uploads are off: " (why) } }
        div #drop .card style="border:2px dashed #99a;text-align:center;padding:2em" {
            p { "Drop an image here, or " label { input #file type="file" accept="image/*"; } }
            p #status .muted {}
        }
        div #results style="display:flex;gap:1em;flex-wrap:wrap" {}
        script #config type="application/json" { (PreEscaped(json_in_script(&config))) }
        script { (PreEscaped(UPLOAD_SCRIPT)) }
    };
    frame("Explain your own image", &navigation(v, 0), body)
}

/// JSON safe inside a `<script>` element: `<` escaped so no string can close the element.
fn json_in_script(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c")
}
