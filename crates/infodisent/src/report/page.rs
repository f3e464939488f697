//! The page frame every report page shares: inline CSS (nothing fetched, so the folder opens
//! from disk with no network) and a navigation bar.

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
    let link = |p: &str| format!("{up}{p}");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · infodisent" }
                style { (PreEscaped(CSS)) }
            }
            body {
                nav {
                    a href=(link("index.html")) { "Summary" }
                    a href=(link("classes.html")) { "Classes" }
                    a href=(link("prototypes.html")) { "Prototypes" }
                    a href=(link("images.html")) { "Images" }
                    a href=(link("mi.html")) { "Information maps" }
                }
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
