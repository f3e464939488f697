//! The viewer's routes: pages, figures drawn on demand, and the JSON API. Nothing from a request
//! is used as a file path: heads, classes, channels, items and uploads are numbers.

use super::pages;
use super::viewer::Viewer;
use crate::error::Error;
use crate::explain::render::{network_view, prototype_crop, prototype_full};
use crate::explain::Polarity;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What every handler shares.
pub struct Shared {
    /// The loaded heads, cache and backbone.
    pub viewer: Viewer,
    /// Uploads being computed or waiting: one more than the queue length.
    pub engine: Arc<Semaphore>,
    /// Figures drawn at once (the rest wait).
    pub drawing: Arc<Semaphore>,
    /// Largest upload in bytes.
    pub max_upload: usize,
}

type AppState = State<Arc<Shared>>;

/// A failed request: its status and what went wrong, answered as `{"error": …}`.
#[derive(Debug)]
pub struct Fail(pub StatusCode, pub String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Input { .. } | Error::Config(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!("{e}");
        }
        Fail(status, e.to_string())
    }
}

type Answer<T> = std::result::Result<T, Fail>;

/// Every route of the viewer over `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/explain", get(upload_page))
        .route("/{h}", get(head_redirect))
        .route("/{h}/", get(head_page))
        .route("/{h}/class/{c}", get(class_page))
        .route("/{h}/channel/{k}", get(channel_page))
        .route("/{h}/image/{i}", get(item_page))
        .route("/{h}/png/{name}", get(figure))
        .route("/api/classes", get(api_classes))
        .route("/api/class/{c}", get(api_class))
        .route("/api/channel/{k}", get(api_channel))
        .route("/api/explain", axum::routing::post(api_explain))
        .with_state(shared)
}

fn head_of(s: &Shared, h: usize) -> Answer<usize> {
    if h < s.viewer.heads.len() {
        Ok(h)
    } else {
        Err(Fail(
            StatusCode::NOT_FOUND,
            format!("no head {h}: the viewer has {}", s.viewer.heads.len()),
        ))
    }
}

/// Runs CPU or disk work off the async threads, at most as many at once as `drawing` allows.
async fn blocking<T: Send + 'static>(
    s: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> Answer<T> + Send + 'static,
) -> Answer<T> {
    let _permit = Arc::clone(&s.drawing)
        .acquire_owned()
        .await
        .map_err(|_| Fail(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))?;
    let s = Arc::clone(s);
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| Fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn home(State(s): AppState) -> Html<String> {
    Html(pages::home(&s.viewer))
}

async fn upload_page(State(s): AppState) -> Html<String> {
    Html(pages::upload(&s.viewer))
}

async fn head_redirect(Path(h): Path<usize>) -> Redirect {
    Redirect::permanent(&format!("{h}/"))
}

async fn head_page(State(s): AppState, Path(h): Path<usize>) -> Answer<Html<String>> {
    Ok(Html(pages::head(&s.viewer, head_of(&s, h)?)))
}

async fn class_page(State(s): AppState, Path((h, c)): Path<(usize, usize)>) -> Answer<Response> {
    let page = pages::class(&s.viewer, head_of(&s, h)?, c);
    Ok(found(
        c < s.viewer.heads[h].session.explainer.head.classes,
        page,
    ))
}

async fn channel_page(State(s): AppState, Path((h, k)): Path<(usize, usize)>) -> Answer<Response> {
    let page = pages::channel(&s.viewer, head_of(&s, h)?, k);
    Ok(found(
        k < s.viewer.heads[h].session.explainer.head.dim,
        page,
    ))
}

fn found(exists: bool, page: String) -> Response {
    let status = if exists {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (status, Html(page)).into_response()
}

fn item_in_range(s: &Shared, h: usize, i: usize) -> Answer<()> {
    let n = s.viewer.heads[h].predictions.len();
    if i < n {
        Ok(())
    } else {
        Err(Fail(
            StatusCode::NOT_FOUND,
            format!("no test image {i}: the split has {n}"),
        ))
    }
}

async fn item_page(State(s): AppState, Path((h, i)): Path<(usize, usize)>) -> Answer<Response> {
    let h = head_of(&s, h)?;
    item_in_range(&s, h, i)?;
    blocking(&s, move |s| {
        let ex = s.viewer.heads[h].explain_item(i)?;
        Ok(Html(pages::item(&s.viewer, h, i, &ex)).into_response())
    })
    .await
}

/// One figure, named as the pages link it: `proto-K-pos|neg-R-crop|full`, `item-I`, `thumb-I`
/// or `upload-ID`, each `.png`.
#[derive(Debug, Clone, Copy)]
enum Figure {
    Prototype(usize, Polarity, usize, bool),
    Item(usize),
    Thumb(usize),
    Upload(u64),
}

fn parse_figure(name: &str) -> Option<Figure> {
    let stem = name.strip_suffix(".png")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let number = |s: &str| s.parse::<usize>().ok();
    match parts[..] {
        ["proto", k, side, r, kind] => Some(Figure::Prototype(
            number(k)?,
            match side {
                "pos" => Polarity::Positive,
                "neg" => Polarity::Negative,
                _ => return None,
            },
            number(r)?,
            match kind {
                "full" => true,
                "crop" => false,
                _ => return None,
            },
        )),
        ["item", i] => Some(Figure::Item(number(i)?)),
        ["thumb", i] => Some(Figure::Thumb(number(i)?)),
        ["upload", id] => Some(Figure::Upload(id.parse().ok()?)),
        _ => None,
    }
}

async fn figure(State(s): AppState, Path((h, name)): Path<(usize, String)>) -> Answer<Response> {
    let h = head_of(&s, h)?;
    let missing = || Fail(StatusCode::NOT_FOUND, "no such figure".into());
    let fig = parse_figure(&name).ok_or_else(missing)?;
    let png = blocking(&s, move |s| {
        let view = &s.viewer.heads[h];
        let session = &view.session;
        let img = match fig {
            Figure::Prototype(k, polarity, rank, full) => {
                let entry = session.prototypes.channels.get(k).ok_or_else(missing)?;
                let p = polarity
                    .pick(&entry.positive, &entry.negative)
                    .get(rank)
                    .ok_or_else(missing)?;
                let img = session.store.get(&p.path)?;
                if full {
                    prototype_full(&img, &session.preprocess, p)
                } else {
                    prototype_crop(&img, &session.preprocess, p, 112)?
                }
            }
            Figure::Item(i) => {
                item_in_range(s, h, i)?;
                let ex = view.explain_item(i)?;
                let img = session.store.get(&ex.source)?;
                session.figure(&img, &ex)?
            }
            Figure::Thumb(i) => {
                item_in_range(s, h, i)?;
                let img = session.store.get(&view.paths[i])?;
                let seen = network_view(&img, &session.preprocess)?;
                image::imageops::thumbnail(&seen, 112, 112)
            }
            Figure::Upload(id) => {
                let up = s.viewer.upload(id).filter(|u| u.head == h).ok_or_else(|| {
                    Fail(
                        StatusCode::NOT_FOUND,
                        format!(
                            "upload {id} is no longer kept (the viewer keeps the last {})",
                            super::viewer::KEPT_UPLOADS
                        ),
                    )
                })?;
                session.draw(&up.view, &up.explanation)?
            }
        };
        Ok(crate::draw::png_bytes(&img)?)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// `?head=H` (default 0).
#[derive(Debug, Deserialize)]
struct HeadQuery {
    #[serde(default)]
    head: usize,
}

async fn api_classes(
    State(s): AppState,
    Query(q): Query<HeadQuery>,
) -> Answer<Json<serde_json::Value>> {
    let h = head_of(&s, q.head)?;
    let view = &s.viewer.heads[h];
    Ok(Json(serde_json::json!({
        "head": view.name,
        "split": view.split,
        "accuracy": view.accuracy(),
        "names": s.viewer.class_names(),
        "classes": view.classes,
    })))
}

async fn api_class(
    State(s): AppState,
    Path(c): Path<usize>,
    Query(q): Query<HeadQuery>,
) -> Answer<Json<serde_json::Value>> {
    let h = head_of(&s, q.head)?;
    let view = &s.viewer.heads[h];
    let summary = view.classes.iter().find(|x| x.class == c).ok_or_else(|| {
        Fail(
            StatusCode::NOT_FOUND,
            format!("no class {c}: the head has {}", view.classes.len()),
        )
    })?;
    let (right, wrong) = view.items_of(c);
    let listed = |items: Vec<usize>| -> Vec<serde_json::Value> {
        items
            .into_iter()
            .map(|i| serde_json::json!({ "item": i, "source": view.paths[i], "predicted": view.predictions[i] }))
            .collect()
    };
    let prototypes: Vec<_> = summary
        .channels
        .iter()
        .filter_map(|ch| view.session.prototypes.channels.get(ch.channel))
        .collect();
    Ok(Json(serde_json::json!({
        "class": summary,
        "prototypes": prototypes,
        "right": listed(right),
        "wrong": listed(wrong),
    })))
}

async fn api_channel(
    State(s): AppState,
    Path(k): Path<usize>,
    Query(q): Query<HeadQuery>,
) -> Answer<Json<serde_json::Value>> {
    let h = head_of(&s, q.head)?;
    let view = &s.viewer.heads[h];
    let protos = view.session.prototypes.channels.get(k).ok_or_else(|| {
        Fail(
            StatusCode::NOT_FOUND,
            format!(
                "no channel {k}: the head has {}",
                view.session.explainer.head.dim
            ),
        )
    })?;
    let names = s.viewer.class_names();
    let users: Vec<_> = view
        .users_of(k)
        .into_iter()
        .map(|(c, w)| serde_json::json!({ "class": c, "name": names.get(c), "weight": w }))
        .collect();
    Ok(Json(serde_json::json!({
        "channel": k,
        "prototypes": protos,
        "classes": users,
    })))
}

/// `?head=H&class=C&name=N` of `POST /api/explain`.
#[derive(Debug, Deserialize)]
struct ExplainQuery {
    #[serde(default)]
    head: usize,
    class: Option<usize>,
    name: Option<String>,
}

/// The uploaded bytes and their name: the raw body, or the multipart field `image`.
async fn upload_body(
    request: Request,
    name: Option<String>,
    limit: usize,
) -> Answer<(Bytes, String)> {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = announced.filter(|&n| n > limit as u64) {
        return Err(Fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload is {n} bytes, over the limit of {limit} (--max-upload)"),
        ));
    }
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let rejected = |e: &dyn std::fmt::Display, status: StatusCode| Fail(status, e.to_string());
    if !multipart {
        let bytes = Bytes::from_request(request, &())
            .await
            .map_err(|e| rejected(&e.body_text(), e.status()))?;
        return Ok((bytes, name.unwrap_or_else(|| "upload".into())));
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| rejected(&e.body_text(), e.status()))?;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| rejected(&e.body_text(), e.status()))?
    {
        if field.name() == Some("image") {
            let file = field.file_name().map(str::to_owned);
            let bytes = field
                .bytes()
                .await
                .map_err(|e| rejected(&e.body_text(), e.status()))?;
            return Ok((bytes, name.or(file).unwrap_or_else(|| "upload".into())));
        }
    }
    Err(Fail(
        StatusCode::BAD_REQUEST,
        "the form has no `image` field".into(),
    ))
}

async fn api_explain(
    State(s): AppState,
    Query(q): Query<ExplainQuery>,
    request: Request,
) -> Answer<Response> {
    let h = head_of(&s, q.head)?;
    let (bytes, name) = upload_body(request, q.name, s.max_upload).await?;
    if bytes.is_empty() {
        return Err(Fail(
            StatusCode::BAD_REQUEST,
            "empty body: send the image's bytes".into(),
        ));
    }
    let permit = Arc::clone(&s.engine).try_acquire_owned().map_err(|_| {
        Fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "the viewer is busy: every queue place is taken; retry in a second".into(),
        )
    })?;
    let shared = Arc::clone(&s);
    let (id, upload) = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let image = crate::imageio::decode_rgb(&bytes, std::path::Path::new(&name))?;
        shared.viewer.explain_upload(h, &image, &name, q.class)
    })
    .await
    .map_err(|e| Fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let mut ex = upload.explanation.clone();
    ex.figure = Some(format!("{h}/png/upload-{id}.png"));
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((headers, Json(ex)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_names_parse_and_nothing_else_does() {
        assert!(matches!(
            parse_figure("proto-12-neg-3-full.png"),
            Some(Figure::Prototype(12, Polarity::Negative, 3, true))
        ));
        assert!(matches!(parse_figure("item-7.png"), Some(Figure::Item(7))));
        assert!(matches!(
            parse_figure("upload-9.png"),
            Some(Figure::Upload(9))
        ));
        for bad in [
            "item-7",
            "item--1.png",
            "../etc/passwd",
            "proto-1-up-0-crop.png",
            "thumb-x.png",
            "",
        ] {
            assert!(parse_figure(bad).is_none(), "{bad}");
        }
    }
}
