//! Extraction as the parts of a cluster job, into one cache: a Slurm job array on a real
//! one-node Slurm (`scripts/slurm/local-cluster.sh`, from Debian's packages) running the
//! shipped `scripts/slurm/extract.sbatch`, tasks started by hand at once, a cancelled array
//! resubmitted, a Kubernetes index, and a cache missing a part. Each cache is compared with a
//! single-process extraction of the same class-sorted JPEG folder through `cache info`'s
//! `content_digest`, and a head trained on it with the same seed must come out bit-identical.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_infodisent");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the binary; panics with its stderr unless it exits with `expected`.
fn run(args: &[&str], envs: &[(&str, &str)], expected: i32) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .env("INFODISENT_THREADS", "2")
        .output()
        .expect("the binary runs");
    assert_eq!(
        out.status.code(),
        Some(expected),
        "infodisent {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Four class folders of 100 JPEGs each (a coloured square on noise, the class decided by its
/// colour) and one truncated JPEG, which `--skip-bad` leaves to the part that reads it.
fn class_folder(root: &Path) {
    use image::{Rgb, RgbImage};
    let colours = [[220, 40, 40], [40, 200, 40], [40, 40, 220], [220, 200, 40]];
    let mut state = 12345u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for (c, colour) in colours.iter().enumerate() {
        let dir = root.join(format!("class{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..100 {
            let (x0, y0) = (next() % 32, next() % 32);
            let img = RgbImage::from_fn(64, 64, |x, y| {
                let inside = (x0..x0 + 28).contains(&x) && (y0..y0 + 28).contains(&y);
                match inside {
                    true => Rgb(*colour),
                    false => Rgb([(next() % 90) as u8; 3]),
                }
            });
            img.save(dir.join(format!("img{i:03}.jpg"))).unwrap();
        }
    }
    let whole = std::fs::read(root.join("class1/img000.jpg")).unwrap();
    std::fs::write(root.join("class1/truncated.jpg"), &whole[..whole.len() / 2]).unwrap();
}

/// The same options for every extraction of the folder: small shards so that each of four
/// parts holds several, and bad images skipped.
fn extract_args<'a>(data: &'a Path, cache: &'a Path) -> Vec<&'a str> {
    vec![
        "extract",
        "--data",
        s(data),
        "--cache",
        s(cache),
        "--shard-size",
        "16",
        "--batch",
        "8",
        "--skip-bad",
        "-q",
    ]
}

fn info(cache: &Path) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["cache", "info", s(cache), "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cache info: {e}\n{}", String::from_utf8_lossy(&out.stderr)))
}

fn digest(cache: &Path) -> String {
    let info = info(cache);
    assert_eq!(info["complete"], true, "{info:#}");
    info["content_digest"].as_str().unwrap().to_owned()
}

/// A dataset folder and its single-process cache, made once for every test here.
struct Reference {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    cache: PathBuf,
    digest: String,
}

fn reference() -> &'static Reference {
    static REFERENCE: std::sync::OnceLock<Reference> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        class_folder(&data);
        let cache = tmp.path().join("single");
        run(&extract_args(&data, &cache), &[], 0);
        let digest = digest(&cache);
        Reference {
            data,
            cache,
            digest,
            _tmp: tmp,
        }
    })
}

/// Trains a head on `cache` with a fixed seed and returns its weight file's bytes.
fn head_bytes(cache: &Path, out: &Path) -> Vec<u8> {
    run(
        &[
            "train",
            "--cache",
            s(cache),
            "--out",
            s(out),
            "--epochs",
            "4",
            "--seed",
            "3",
            "-q",
        ],
        &[],
        0,
    );
    std::fs::read(out.join("head.safetensors")).unwrap()
}

fn slurm(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{program}: {e}: run scripts/slurm/local-cluster.sh start (scripts/test.sh does)"
            )
        });
    assert!(
        out.status.success(),
        "{program} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `sbatch` of the shipped script over `cache`, one CPU per task, output under `logs`.
fn sbatch(cache: &Path, logs: &Path, array: &str, extra: &[&str]) -> Output {
    let r = reference();
    let script = repo().join("scripts/slurm/extract.sbatch");
    let output = logs.join("task-%A_%a.out");
    let exports = format!(
        "ALL,DATA={},CACHE={},INFODISENT={BIN},INFODISENT_THREADS=1,EXTRACT_ARGS=--shard-size 16 --batch 8 --skip-bad -q",
        s(&r.data),
        s(cache)
    );
    let mut args = vec![
        "--array",
        array,
        "--cpus-per-task=1",
        "--mem=2G",
        "--export",
        &exports,
        "--output",
        s(&output),
    ];
    args.extend_from_slice(extra);
    args.push(s(&script));
    slurm("sbatch", &args)
}

fn start_slurm() {
    let out = Command::new(repo().join("scripts/slurm/local-cluster.sh"))
        .arg("start")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "local-cluster.sh start\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_slurm_job_array_fills_one_cache_as_one_process_would_and_resumes_when_cancelled() {
    let r = reference();
    start_slurm();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();

    let array = tmp.path().join("array");
    sbatch(&array, &logs, "0-3", &["--wait"]);
    assert_eq!(digest(&array), r.digest);
    let task_log =
        std::fs::read_to_string(logs.read_dir().unwrap().next().unwrap().unwrap().path()).unwrap();
    assert!(task_log.contains("Slurm array task"), "{task_log}");
    assert_eq!(
        head_bytes(&r.cache, &tmp.path().join("head-single")),
        head_bytes(&array, &tmp.path().join("head-array")),
        "heads trained with one seed on the two caches differ"
    );

    // One task at a time (`%1`), cancelled once the first has finished a shard: the running
    // task is killed mid-run and the others never start.
    let cancelled = tmp.path().join("cancelled");
    let out = sbatch(&cancelled, &logs, "0-3%1", &["--parsable"]);
    let job = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let progress = cancelled.join("train/part-00000-of-00004.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !progress.exists() {
        assert!(Instant::now() < deadline, "task 0 wrote no shard in 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    slurm("scancel", &[&job]);
    while !String::from_utf8_lossy(&slurm("squeue", &["-h", "-j", &job]).stdout)
        .trim()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "job {job} still queued after scancel"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let partial = info(&cancelled);
    assert_eq!(partial["complete"], false, "{partial:#}");
    let train = partial["splits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "train")
        .unwrap();
    let part0 = &train["parts"][0];
    assert!(
        part0["shards_done"].as_u64().unwrap() < part0["shards"].as_u64().unwrap(),
        "task 0 finished before it was cancelled: {part0}"
    );
    sbatch(&cancelled, &logs, "0-3", &["--wait"]);
    assert_eq!(digest(&cancelled), r.digest);
}

#[test]
fn four_tasks_started_at_once_by_hand_give_the_same_cache() {
    let r = reference();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("by-hand");
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let part = format!("{i}/4");
            let mut args = extract_args(&r.data, &cache);
            args.extend(["--part", &part]);
            Command::new(BIN)
                .args(&args)
                .env("INFODISENT_THREADS", "1")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut task in tasks {
        assert!(task.wait().unwrap().success());
    }
    assert_eq!(digest(&cache), r.digest);
    // A finished part run again does nothing.
    let mut args = extract_args(&r.data, &cache);
    args.extend(["--part", "2/4", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&run(&args, &[], 0).stdout).unwrap();
    assert_eq!(again["images"], 0, "{again:#}");
}

#[test]
fn a_cache_missing_a_part_is_refused_naming_it_and_a_kubernetes_index_is_read() {
    let r = reference();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("three-of-four");
    for i in [0, 1, 3] {
        let index = i.to_string();
        let mut args = extract_args(&r.data, &cache);
        args.extend(["--part", "auto", "--parts", "4", "--json"]);
        let out = run(&args, &[("JOB_COMPLETION_INDEX", &index)], 0);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["part"], serde_json::json!({"index": i, "count": 4}));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("Kubernetes job completion index {i} of 4")),
            "{stderr}"
        );
    }
    let head = tmp.path().join("head");
    let out = run(&["train", "--cache", s(&cache), "--out", s(&head)], &[], 5);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("part 2/4 is missing") && stderr.contains("--part 2/4"),
        "{stderr}"
    );
    let out = run(&["cache", "info", s(&cache)], &[], 5);
    assert!(String::from_utf8_lossy(&out.stderr).contains("lacks part(s) 2/4"));

    // A task with another N, or other options, is refused naming the difference.
    let mut args = extract_args(&r.data, &cache);
    args.extend(["--part", "1/2"]);
    let out = run(&args, &[], 5);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("planned for 4 parts, this task asks for 2")
    );
    let mut args = extract_args(&r.data, &cache);
    args.extend(["--part", "2/4", "--dtype", "f32"]);
    let out = run(&args, &[], 5);
    assert!(String::from_utf8_lossy(&out.stderr).contains("another stored precision"));

    // The missing part, from a copy of the dataset elsewhere (as a node's local scratch),
    // completes the cache.
    let copy = tmp.path().join("scratch-copy");
    copy_tree(&r.data, &copy);
    let mut args = extract_args(&copy, &cache);
    args.extend(["--part", "2/4", "--staged-from", s(&r.data)]);
    run(&args, &[], 0);
    assert_eq!(digest(&cache), r.digest);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
