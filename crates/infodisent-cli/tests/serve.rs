//! `infodisent serve` as a user runs it: the binary on a free loopback port over a cache of real
//! photos through the built-in Lite0, asked by a real HTTP client. Every page and API route
//! answers; an uploaded photo gets the explanation `explain --json` gives for the file; hostile
//! input gets a 4xx and the server keeps answering; a full queue answers 503 with Retry-After;
//! and headless Chromium drops an image on the upload page and sees it explained.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_infodisent"));
    c.env("INFODISENT_THREADS", "2");
    c
}

fn run_ok(args: &[&str]) -> Vec<u8> {
    let out = bin().args(args).output().expect("the binary runs");
    assert!(
        out.status.success(),
        "infodisent {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct Fixture {
    root: PathBuf,
    photos: Vec<PathBuf>,
}

impl Fixture {
    fn cache(&self) -> String {
        self.root.join("cache").display().to_string()
    }
    fn head(&self) -> String {
        self.root.join("head").display().to_string()
    }
}

/// Two classes of half the asset photos each (ten), extracted through Lite0, and a head trained briefly
/// (the viewer's answers must match `explain`, whatever the head's accuracy).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-fixture");
        let _ = std::fs::remove_dir_all(&root);
        let source = infodisent::assets::asset("photos/imagenet").unwrap();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(source)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        photos.sort();
        for (i, p) in photos.iter().enumerate() {
            let class = root.join("data").join(if i < photos.len() / 2 {
                "alpha"
            } else {
                "beta"
            });
            std::fs::create_dir_all(&class).unwrap();
            std::fs::copy(p, class.join(p.file_name().unwrap())).unwrap();
        }
        let data = root.join("data").display().to_string();
        let fx = Fixture { root, photos };
        run_ok(&[
            "extract",
            "--model",
            "efficientnet-lite0",
            "--data",
            &data,
            "--cache",
            &fx.cache(),
            "-q",
        ]);
        run_ok(&[
            "train",
            "--cache",
            &fx.cache(),
            "--out",
            &fx.head(),
            "--epochs",
            "3",
            "-q",
        ]);
        fx
    })
}

/// A running `infodisent serve`, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Server {
    let fx = fixture();
    let mut child = bin()
        .args([
            "serve",
            "--cache",
            &fx.cache(),
            "--head",
            &fx.head(),
            "--port",
            "0",
            "--json",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("serve prints its URL as JSON, not `{line}`"));
    Server {
        child,
        url: v["url"].as_str().unwrap().to_owned(),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    )
}

/// Status, headers and body of a GET.
fn get(url: &str) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let mut r = agent().get(url).call().expect("the server answers");
    let body = r
        .body_mut()
        .with_config()
        .limit(50 << 20)
        .read_to_vec()
        .unwrap();
    (r.status().as_u16(), r.headers().clone(), body)
}

fn post(
    url: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, ureq::http::HeaderMap, serde_json::Value) {
    let mut r = agent()
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .expect("the server answers");
    let text = r.body_mut().read_to_string().unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer, not `{text}`"));
    (r.status().as_u16(), r.headers().clone(), json)
}

fn multipart(field: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "infodisent-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn html(url: &str) -> String {
    let (status, headers, body) = get(url);
    assert_eq!(status, 200, "{url}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    String::from_utf8(body).unwrap()
}

fn png(url: &str) -> image::RgbImage {
    let (status, headers, body) = get(url);
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "image/png", "{url}");
    image::load_from_memory(&body).unwrap().to_rgb8()
}

#[test]
fn every_page_and_api_route_answers_with_relative_links() {
    let s = serve(&[]);
    let u = &s.url;
    let home = html(u);
    assert!(home.contains("efficientnet-lite0") && home.contains("href=\"explain\""));
    for page in [
        "explain",
        "0/",
        "0/class/0",
        "0/class/1",
        "0/channel/7",
        "0/image/0",
        "0/image/3",
    ] {
        let text = html(&format!("{u}{page}"));
        // Behind a proxy prefix only relative links work.
        assert!(
            !text.contains("href=\"/") && !text.contains("src=\"/"),
            "{page} has an absolute link"
        );
    }
    // The head's page draws how alike its deciding channels are, rotated beside raw.
    let head_page = html(&format!("{u}0/"));
    assert!(head_page.contains("How alike the deciding channels are"));
    assert!(
        head_page.contains("rotated (InfoDisent): mean |r|")
            && head_page.contains("raw (backbone)")
    );
    let class = html(&format!("{u}0/class/1"));
    assert!(class.contains("The channels it rests on") && class.contains("png/proto-"));
    let channel = html(&format!("{u}0/channel/7"));
    assert!(channel.contains("Positive prototypes") && channel.contains("Negative prototypes"));
    assert_eq!(
        get(&format!("{u}0")).0,
        308,
        "a head without its slash redirects"
    );

    let classes: serde_json::Value =
        serde_json::from_slice(&get(&format!("{u}api/classes")).2).unwrap();
    assert_eq!(classes["names"], serde_json::json!(["alpha", "beta"]));
    assert_eq!(classes["classes"].as_array().unwrap().len(), 2);
    let c1: serde_json::Value = serde_json::from_slice(&get(&format!("{u}api/class/1")).2).unwrap();
    let listed = c1["right"].as_array().unwrap().len() + c1["wrong"].as_array().unwrap().len();
    assert_eq!(listed as u64, c1["class"]["images"].as_u64().unwrap());
    let top_channel = c1["class"]["channels"][0]["channel"].as_u64().unwrap();
    let ch: serde_json::Value =
        serde_json::from_slice(&get(&format!("{u}api/channel/{top_channel}")).2).unwrap();
    assert_eq!(ch["prototypes"]["positive"].as_array().unwrap().len(), 5);

    for fig in [
        "0/png/item-0.png",
        "0/png/thumb-2.png",
        "0/png/proto-7-pos-0-crop.png",
        "0/png/proto-7-neg-4-full.png",
    ] {
        assert!(png(&format!("{u}{fig}")).width() > 0, "{fig}");
    }
    for missing in [
        "0/class/2",
        "0/channel/1280",
        "0/image/4",
        "1/",
        "0/png/item-4.png",
        "0/png/proto-1-pos-9-crop.png",
        "0/png/..%2F..%2Fetc%2Fpasswd",
        "api/class/5",
        "api/classes?head=3",
    ] {
        assert_eq!(get(&format!("{u}{missing}")).0, 404, "{missing}");
    }
}

/// `explain --json` on the files, one explanation per path.
fn explain_json(files: &[&Path]) -> Vec<serde_json::Value> {
    let fx = fixture();
    let out = fx.root.join("explain-out");
    let (cache, head) = (fx.cache(), fx.head());
    let mut args = vec!["explain", "--json", "--cache", &cache, "--head", &head];
    let out_s = out.display().to_string();
    args.extend(["--out", &out_s]);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let v: serde_json::Value = serde_json::from_slice(&run_ok(&args)).unwrap();
    v["images"].as_array().unwrap().clone()
}

fn assert_same_explanation(served: &serde_json::Value, cli: &serde_json::Value) {
    assert_eq!(served["predicted"], cli["predicted"]);
    assert_eq!(served["class"], cli["class"]);
    for side in ["positive", "negative"] {
        let (a, b) = (
            served[side].as_array().unwrap(),
            cli[side].as_array().unwrap(),
        );
        assert_eq!(a.len(), b.len(), "{side}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x["channel"], y["channel"], "{side}");
            let (p, q) = (
                x["contribution"].as_f64().unwrap(),
                y["contribution"].as_f64().unwrap(),
            );
            assert!(
                (p - q).abs() <= 1e-5 * q.abs().max(1.0),
                "{side}: {p} vs {q}"
            );
        }
    }
    let fields: Vec<&String> = served.as_object().unwrap().keys().collect();
    let expected: Vec<&String> = cli.as_object().unwrap().keys().collect();
    assert_eq!(fields, expected, "the same fields as explain --json");
}

#[test]
fn uploads_are_explained_as_explain_json_explains_the_files() {
    let fx = fixture();
    let s = serve(&[]);
    let files: Vec<&Path> = [0, 10, 19]
        .iter()
        .map(|&i| fx.photos[i].as_path())
        .collect();
    let cli = explain_json(&files);
    for (file, expected) in files.iter().zip(&cli) {
        let bytes = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        let (status, headers, raw) = post(
            &format!("{}api/explain?name={name}", s.url),
            "application/octet-stream",
            &bytes,
        );
        assert_eq!(status, 200, "{raw}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(raw["source"], name);
        assert_same_explanation(&raw, expected);
        let (ct, body) = multipart("image", name, &bytes);
        let (status, _, form) = post(&format!("{}api/explain", s.url), &ct, &body);
        assert_eq!(status, 200, "{form}");
        assert_eq!(form["source"], name, "the multipart file name names it");
        assert_same_explanation(&form, expected);
        let figure = form["figure"].as_str().unwrap();
        assert!(figure.starts_with("0/png/upload-"), "{figure}");
        assert!(png(&format!("{}{figure}", s.url)).width() > 224);
    }
}

/// A raw HTTP/1.1 request over TCP, for what a well-behaved client will not send.
fn raw_request(url: &str, head: &str, body: &[u8]) -> String {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may refuse before the body is read; what it answered is what counts.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in `{answer}`"))
}

#[test]
fn hostile_input_gets_4xx_and_the_server_keeps_answering() {
    let fx = fixture();
    let s = serve(&[]);
    let explain = format!("{}api/explain", s.url);
    let jpeg = std::fs::read(&fx.photos[1]).unwrap();
    let mut huge = Vec::new();
    // A valid PNG signature and IHDR chunk declaring 100000 × 100000 pixels, and nothing more.
    huge.extend_from_slice(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR");
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let crc = crc32(&[b"IHDR".as_slice(), &ihdr].concat());
    huge.extend_from_slice(&ihdr);
    huge.extend_from_slice(&crc.to_be_bytes());
    // A first data chunk, so a decoder reading the header has seen all it needs.
    huge.extend_from_slice(&[0, 0, 0, 2, b'I', b'D', b'A', b'T', 0x78, 0x9c]);
    huge.extend_from_slice(&crc32(&[b'I', b'D', b'A', b'T', 0x78, 0x9c]).to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, &str, u16)> = vec![
        (
            "truncated JPEG",
            jpeg[..jpeg.len() / 2].to_vec(),
            "truncated",
            400,
        ),
        ("PNG declaring 100000 × 100000", huge, "100000", 400),
        ("empty body", Vec::new(), "empty", 400),
        ("text", b"hello, not an image".to_vec(), "not an image", 400),
    ];
    for (what, body, says, expected) in cases {
        let (status, _, v) = post(
            &format!("{explain}?name=x.jpg"),
            "application/octet-stream",
            &body,
        );
        assert_eq!(status, expected, "{what}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{what}: {v}");
        assert_eq!(get(&s.url).0, 200, "still answering after {what}");
    }
    let script = "<script>alert(1)</script>.jpg";
    let (ct, body) = multipart("image", script, &jpeg);
    let (status, _, v) = post(&explain, &ct, &body);
    assert_eq!(status, 200);
    assert_eq!(v["source"], script, "the name comes back as JSON text");
    let (ct, body) = multipart("picture", "a.jpg", &jpeg);
    assert_eq!(post(&explain, &ct, &body).0, 400, "a form without `image`");

    // 50 MB of noise over the 20 MB limit: refused from its Content-Length, before it is read.
    let noise: Vec<u8> = (0..50_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let head = format!(
        "POST /api/explain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        noise.len()
    );
    assert_eq!(
        status_of(&raw_request(&s.url, &head, &noise[..1 << 20])),
        413
    );
    // Sent in chunks with no length announced: cut off once past the limit.
    let over = &noise[..20_000_000 + 1024];
    let mut chunked = Vec::new();
    for chunk in over.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /api/explain HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let answer = raw_request(&s.url, head, &chunked);
    assert_eq!(status_of(&answer), 413, "{answer}");

    let foreign = raw_request(
        &s.url,
        "GET /api/classes HTTP/1.1\r\nHost: attacker.example:8000\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert_eq!(status_of(&foreign), 403, "a DNS-rebinding Host is refused");
    assert!(!foreign.contains("alpha"), "and sees nothing");
    assert_eq!(
        get(&format!("{}api/classes", s.url)).0,
        200,
        "still answering"
    );
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let fx = fixture();
    let s = serve(&["--queue", "0"]);
    let jpeg = std::fs::read(&fx.photos[2]).unwrap();
    let url = format!("{}api/explain", s.url);
    let barrier = std::sync::Barrier::new(8);
    let answers: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let (status, headers, _) = post(&url, "image/jpeg", &jpeg);
                    let retry = headers
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_owned());
                    (status, retry)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert!(
        !busy.is_empty(),
        "8 at once with no queue place: {answers:?}"
    );
    assert!(
        busy.iter().all(|a| a.1.as_deref() == Some("1")),
        "{answers:?}"
    );
    assert!(
        answers.iter().all(|a| a.0 == 200 || a.0 == 503),
        "{answers:?}"
    );
    assert!(answers.iter().any(|a| a.0 == 200), "{answers:?}");
    assert_eq!(
        post(&url, "image/jpeg", &jpeg).0,
        200,
        "free again once they are done"
    );
}

#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct BrowserCheck {
    pages: usize,
    images: usize,
    explained: String,
    console_errors: Vec<String>,
    failed_requests: Vec<String>,
    broken_images: Vec<String>,
}

#[test]
fn a_browser_drops_an_image_on_the_upload_page_and_sees_it_explained() {
    let fx = fixture();
    let s = serve(&[]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("tools/browser-check/node_modules/playwright-core")
            .exists(),
        "the browser check is not installed: run scripts/install-browser.sh"
    );
    let out = Command::new("node")
        .arg(root.join("tools/browser-check/check-viewer.mjs"))
        .arg(&s.url)
        .arg(&fx.photos[5])
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "browser check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check: BrowserCheck = serde_json::from_slice(&out.stdout).expect("the check prints JSON");
    assert!(check.pages >= 6, "{check:?}");
    assert!(check.images >= 20, "{check:?}");
    assert!(check.console_errors.is_empty(), "{check:?}");
    assert!(check.failed_requests.is_empty(), "{check:?}");
    assert!(check.broken_images.is_empty(), "{check:?}");
    let expected = &explain_json(&[fx.photos[5].as_path()])[0];
    let name = |c: u64| ["alpha", "beta"][c as usize];
    assert_eq!(
        check.explained,
        name(expected["predicted"].as_u64().unwrap()),
        "{check:?}"
    );
}

#[test]
fn bench_serve_measures_a_viewer_it_starts_and_reads_its_memory() {
    let fx = fixture();
    let (cache, head) = (fx.cache(), fx.head());
    let out = run_ok(&[
        "bench",
        "serve",
        "--head",
        &head,
        "--cache",
        &cache,
        "--warmup",
        "2",
        "--requests",
        "8",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let levels = v["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2, "{v}");
    for (level, clients) in levels.iter().zip([1, 8]) {
        assert_eq!(level["clients"], clients);
        assert_eq!(level["requests"], 4);
        assert_eq!(level["errors"], 0, "{v}");
        assert!(level["p50_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(v["image"], serde_json::json!([500, 375, v["image"][2]]));
    assert!(
        v["rss_after_warmup_mib"].as_f64().unwrap() > 10.0,
        "the child server's memory is read: {v}"
    );
    assert!(v["rss_growth"].is_number());
}

#[test]
fn several_heads_are_served_side_by_side() {
    let fx = fixture();
    let head = fx.head();
    let s = serve(&["--head", &head]);
    let home = html(&s.url);
    assert_eq!(
        home.matches("href=\"1/\"").count(),
        1,
        "the second head is listed"
    );
    let classes = html(&format!("{}1/", s.url));
    assert!(
        classes.contains("href=\"../1/class/0\""),
        "links stay on the second head"
    );
    assert_eq!(get(&format!("{}2/", s.url)).0, 404);
    let upload = html(&format!("{}explain", s.url));
    assert!(
        upload.contains(r#""heads":["head","head"]"#),
        "the upload page asks both heads"
    );
    let jpeg = std::fs::read(&fx.photos[4]).unwrap();
    let (a, b) = (
        post(&format!("{}api/explain?head=0", s.url), "image/jpeg", &jpeg).2,
        post(&format!("{}api/explain?head=1", s.url), "image/jpeg", &jpeg).2,
    );
    assert_same_explanation(&a, &b);
    assert!(b["figure"].as_str().unwrap().starts_with("1/png/upload-"));
}
