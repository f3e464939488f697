//! Training on synthetic caches: it learns, keeps W ≥ 0, is bit-reproducible, resumes exactly,
//! and rejects bad configurations and broken caches with clear errors.

mod train_common;

use infodisent::eval::{comparison_table, evaluate, evaluate_original};
use infodisent::head::params::HeadParams;
use infodisent::head::{HeadKind, Loss, Parametrization};
use infodisent::train::{
    train, train_partial, Init, Schedule, Target, TrainConfig, DEFAULT_KEEP_TOP, ORIGINAL_LR,
    ORIGINAL_MIN_STEPS,
};
use infodisent::Error;
use train_common::{write_cache, CLASSES};

/// A dense cross-entropy head (or probe) of `kind`; the tests of pruning set `keep_top`
/// themselves.
fn config(kind: HeadKind, epochs: usize) -> TrainConfig {
    let mut cfg = TrainConfig {
        epochs: Some(epochs),
        batch_size: 20,
        lr: 0.05,
        seed: 7,
        val_fraction: 0.0,
        ..TrainConfig::default()
    }
    .paper()
    .with_kind(kind);
    cfg.head.w_init = 0.1;
    cfg
}

fn single_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn infodisent_learns_with_nonnegative_weights_and_beats_chance() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 180, 60, 1);
    // The paper's static U = expm(A − Aᵀ), the dynamic trivialization rebased every step, and
    // the frame of the default recipe.
    for (rotation, rebase_every) in [
        (Parametrization::Expm, 0),
        (Parametrization::Expm, 1),
        (Parametrization::Frame, 0),
    ] {
        let mut cfg = config(HeadKind::InfoDisent, 6);
        cfg.head.rotation = rotation;
        cfg.head.rebase_every = rebase_every;
        cfg.val_fraction = 0.2;
        cfg.lr_rotation = Some(0.01);
        let out = dir.path().join(format!("head-{rotation:?}-{rebase_every}"));
        let summary = train(&cache, &cfg, &out, false).unwrap();
        assert!(
            summary.train_acc > 0.9,
            "train accuracy {}",
            summary.train_acc
        );
        assert!(summary.best_val_acc.unwrap() > 0.9);
        assert_eq!(
            summary.schedule.train_items + summary.schedule.val_items,
            180
        );
        let head = HeadParams::load(out.join("head.safetensors")).unwrap();
        assert!(head.weight.iter().all(|&w| w >= 0.0));
        assert!(head.weight.iter().any(|&w| w > 0.0));
        // The rotation moved away from the identity and is still orthogonal.
        let d = head.dim;
        assert!((0..d).any(|i| (head.rotation[i * d + i] - 1.0).abs() > 1e-4));
        assert!(infodisent::head::linalg::orthogonality_defect(d, &head.rotation) < 1e-5);
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert_eq!(metrics.lines().count(), 6);
        assert!(metrics
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["val_acc"].is_number()));

        let report = evaluate(&cache, "test", "infodisent", &head).unwrap();
        assert!(report.top1 > 0.9, "test top-1 {}", report.top1);
        assert_eq!(report.count, 60);
        assert_eq!(report.confusion.iter().flatten().sum::<u64>(), 60);
        assert_eq!(
            report.top5, 1.0,
            "with 3 classes the top-5 always holds the label"
        );
    }
}

#[test]
fn linear_probe_and_original_classifier_compare() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 120, 60, 2);
    let out = dir.path().join("probe");
    train(&cache, &config(HeadKind::LinearProbe, 5), &out, false).unwrap();
    let probe =
        infodisent::classifier::LinearClassifier::load(out.join("linear.safetensors")).unwrap();
    let r = evaluate(&cache, "test", "linear probe", &probe).unwrap();
    assert!(r.top1 > 0.8, "probe top-1 {}", r.top1);
    let orig = evaluate_original(&cache, "test").unwrap().unwrap();
    assert!(
        orig.top1 > 0.9,
        "the planted classifier is nearly perfect: {}",
        orig.top1
    );
    assert_eq!(orig.per_class.len(), CLASSES);
    let table = comparison_table(&[
        ("linear probe".into(), Ok(r.clone())),
        ("original".into(), Ok(orig)),
        ("other".into(), Err("no classifier".into())),
        (
            "a head named longer than the column (InfoDisent)".into(),
            Ok(r),
        ),
    ]);
    assert!(table.contains("not applicable: no classifier"));
    // Every row's last column ends where the header's does, however long a name is.
    let header: Vec<char> = table.lines().next().unwrap().chars().collect();
    for line in table.lines() {
        let line: Vec<char> = line.chars().collect();
        assert!(
            line.len() >= header.len()
                && line[header.len() - 1] != ' '
                && line.get(header.len()).is_none_or(|&c| c == ' '),
            "misaligned row in\n{table}"
        );
    }
}

#[test]
fn same_seed_on_one_thread_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 100, 10, 3);
    let mut cfg = config(HeadKind::InfoDisent, 2);
    cfg.head.gumbel = true;
    let run = |name: &str, cfg: &TrainConfig| {
        let out = dir.path().join(name);
        single_thread(|| train(&cache, cfg, &out, false).unwrap());
        std::fs::read(out.join("head.safetensors")).unwrap()
    };
    let (a, b) = (run("a", &cfg), run("b", &cfg));
    assert!(a == b, "two runs with the same seed differ");
    cfg.seed += 1;
    assert!(a != run("c", &cfg), "another seed must give another head");
}

#[test]
fn killed_and_resumed_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 90, 10, 4);
    // The static parametrizations and the dynamic trivialization, whose base U₀ must travel
    // with the checkpoint (and with the best-epoch snapshot).
    for (rotation, rebase) in [
        (Parametrization::Expm, 0),
        (Parametrization::Cayley, 0),
        (Parametrization::Expm, 2),
        (Parametrization::Cayley, 2),
        (Parametrization::Frame, 0),
    ] {
        let mut cfg = config(HeadKind::InfoDisent, 4);
        cfg.head.rotation = rotation;
        cfg.head.rebase_every = rebase;
        cfg.warmup_epochs = 1.0;
        cfg.weight_decay = 0.01;
        cfg.val_fraction = 0.1;
        let full = dir.path().join(format!("full-{rotation:?}-{rebase}"));
        let parts = dir.path().join(format!("parts-{rotation:?}-{rebase}"));
        single_thread(|| {
            train(&cache, &cfg, &full, false).unwrap();
            let first = train_partial(&cache, &cfg, &parts, false, Some(1)).unwrap();
            assert_eq!(first.epochs, 1);
            assert!(
                !parts.join("head.safetensors").exists(),
                "an interrupted run has no final head"
            );
            train_partial(&cache, &cfg, &parts, true, Some(2)).unwrap();
            train(&cache, &cfg, &parts, true).unwrap();
        });
        for file in ["head.safetensors", "checkpoint.safetensors"] {
            let same =
                std::fs::read(full.join(file)).unwrap() == std::fs::read(parts.join(file)).unwrap();
            assert!(
                same,
                "{rotation:?}: {file} differs between the uninterrupted and the resumed run"
            );
        }
        let strip = |p: &std::path::Path| -> Vec<serde_json::Value> {
            std::fs::read_to_string(p.join("metrics.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().unwrap().remove("seconds");
                    v
                })
                .collect()
        };
        assert_eq!(strip(&full), strip(&parts));
    }
}

#[test]
fn pruned_fine_tune_keeps_k_weights_per_class_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 180, 60, 5);
    let mut cfg = config(HeadKind::InfoDisent, 6);
    cfg.lr_rotation = Some(0.01);
    cfg.keep_top = Some(2);
    cfg.prune_after = Some(3);
    cfg.val_fraction = 0.1;
    let full = dir.path().join("full");
    let parts = dir.path().join("parts");
    single_thread(|| {
        train(&cache, &cfg, &full, false).unwrap();
        // Interrupted once before and once right after the pruning epoch.
        train_partial(&cache, &cfg, &parts, false, Some(3)).unwrap();
        train_partial(&cache, &cfg, &parts, true, Some(1)).unwrap();
        train(&cache, &cfg, &parts, true).unwrap();
    });
    for file in ["head.safetensors", "checkpoint.safetensors"] {
        assert!(
            std::fs::read(full.join(file)).unwrap() == std::fs::read(parts.join(file)).unwrap(),
            "{file} differs between the uninterrupted and the resumed pruned run"
        );
    }
    let head = HeadParams::load(full.join("head.safetensors")).unwrap();
    for row in head.weight.chunks(head.dim) {
        let nonzero = row.iter().filter(|&&w| w > 0.0).count();
        assert!((1..=2).contains(&nonzero), "a class kept {nonzero} weights");
        assert!(row.iter().all(|&w| w >= 0.0));
    }
    let report = evaluate(&cache, "test", "pruned", &head).unwrap();
    assert!(
        report.top1 > 0.9,
        "two channels per class still decide: top-1 {}",
        report.top1
    );
}

#[test]
fn bad_configs_are_rejected_with_clear_errors() {
    let bad = |edit: &dyn Fn(&mut TrainConfig), needle: &str| {
        let mut cfg = TrainConfig::default();
        edit(&mut cfg);
        let err = cfg
            .validate()
            .and_then(|_| Schedule::new(&cfg, 100, 10).map(|_| ()))
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(
            err.to_string().contains(needle),
            "`{err}` should mention `{needle}`"
        );
    };
    bad(&|c| c.epochs = Some(0), "epochs");
    bad(&|c| c.batch_size = 0, "batch_size");
    bad(&|c| c.lr = -1.0, "lr");
    bad(&|c| c.lr = f64::NAN, "lr");
    bad(&|c| c.weight_decay = -0.1, "weight_decay");
    bad(&|c| c.val_fraction = 1.0, "val_fraction");
    bad(
        &|c| {
            c.val_fraction = 0.0;
            c.patience = Some(3);
        },
        "val_fraction",
    );
    bad(
        &|c| {
            c.epochs = Some(4);
            c.warmup_epochs = 10.0;
        },
        "warmup_epochs",
    );
    bad(
        &|c| {
            c.min_steps = 10;
            c.max_steps = 5;
        },
        "min_steps",
    );
    bad(&|c| c.keep_top = Some(0), "keep_top");
    bad(
        &|c| {
            c.keep_top = None;
            c.prune_after = Some(2);
        },
        "keep_top",
    );
    bad(&|c| c.epochs = Some(1), "keep_top = 0");
    bad(
        &|c| {
            c.epochs = Some(10);
            c.keep_top = Some(5);
            c.prune_after = Some(10);
        },
        "prune_after",
    );
    bad(
        &|c| {
            c.keep_top = Some(5);
            c.head.kind = HeadKind::LinearProbe;
        },
        "linear probe",
    );
    bad(
        &|c| {
            c.head.gumbel = true;
            c.head.tau_end = 0.0;
        },
        "tau",
    );

    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("cfg.toml");
    std::fs::write(&toml_path, "epochs = 3\nlearning_rate = 0.1\n").unwrap();
    let err = TrainConfig::from_toml_file(&toml_path).unwrap_err();
    assert!(
        err.to_string().contains("learning_rate") && err.to_string().contains("cfg.toml"),
        "{err}"
    );
    std::fs::write(
        &toml_path,
        "epochs = 3\nbatch_size = 16\n[head]\nkind = \"linear-probe\"\n",
    )
    .unwrap();
    let cfg = TrainConfig::from_toml_file(&toml_path).unwrap();
    assert_eq!(
        (
            cfg.epochs,
            cfg.batch_size,
            cfg.head.kind,
            cfg.keep_top,
            cfg.head.loss
        ),
        (Some(3), 16, HeadKind::LinearProbe, None, Loss::CrossEntropy),
        "a probe has no pruning and the softmax loss by default"
    );
    // A file naming a kind and a target gets exactly the recipe the CLI's flags give, with the
    // keys it names on top.
    for (text, kind, target) in [
        (
            "[head]\nkind = \"linear-probe\"\n",
            HeadKind::LinearProbe,
            Target::Labels,
        ),
        (
            "target = \"original\"\n",
            HeadKind::InfoDisent,
            Target::Original,
        ),
        (
            "target = \"original\"\n[head]\nkind = \"linear-probe\"\n",
            HeadKind::LinearProbe,
            Target::Original,
        ),
    ] {
        std::fs::write(&toml_path, text).unwrap();
        let want = TrainConfig::default().with_kind(kind).with_target(target);
        assert_eq!(
            TrainConfig::from_toml_file(&toml_path).unwrap(),
            want,
            "{text}"
        );
        std::fs::write(
            &toml_path,
            format!("min_steps = 7\nbatch_size = 16\n{text}"),
        )
        .unwrap();
        let cfg = TrainConfig::from_toml_file(&toml_path).unwrap();
        assert_eq!(
            (cfg.min_steps, cfg.batch_size, cfg.head.loss),
            (7, 16, want.head.loss),
            "{text}"
        );
    }
    // Fitting the model: InfoDisent starts dense from its classifier at the gentle rate; the
    // probe, the baseline, starts at random with the longer schedule.
    let fit = TrainConfig::default().with_target(Target::Original);
    assert_eq!(
        (fit.init, fit.keep_top, fit.lr, fit.head.loss),
        (Init::Original, None, ORIGINAL_LR, Loss::CrossEntropy)
    );
    let probe = TrainConfig::default()
        .with_kind(HeadKind::LinearProbe)
        .with_target(Target::Original);
    assert_eq!(
        (probe.init, probe.min_steps),
        (Init::Random, ORIGINAL_MIN_STEPS)
    );
    for (bad, why) in [
        (
            TrainConfig {
                init: Init::Original,
                ..TrainConfig::default()
            },
            "only --target original",
        ),
        (
            TrainConfig {
                init: Init::Original,
                ..probe
            },
            "starts at random",
        ),
    ] {
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
    }
    std::fs::write(&toml_path, "epochs = 4\n").unwrap();
    let cfg = TrainConfig::from_toml_file(&toml_path).unwrap();
    assert_eq!(
        (cfg.keep_top, cfg.head.loss),
        (Some(DEFAULT_KEEP_TOP), Loss::Sigmoid)
    );
    let keep_top_of = |text: &str| {
        std::fs::write(&toml_path, text).unwrap();
        TrainConfig::from_toml_file(&toml_path).unwrap().keep_top
    };
    assert_eq!(keep_top_of("epochs = 4\n"), Some(DEFAULT_KEEP_TOP));
    assert_eq!(
        keep_top_of("keep_top = 0\n"),
        None,
        "0 asks for the dense head"
    );
    assert_eq!(keep_top_of("keep_top = 3\n"), Some(3));
    std::fs::write(
        &toml_path,
        "keep_top = 3\n[head]\nkind = \"linear-probe\"\n",
    )
    .unwrap();
    let err = TrainConfig::from_toml_file(&toml_path).unwrap_err();
    assert!(err.to_string().contains("linear probe"), "{err}");
}

#[test]
fn corrupt_or_stale_caches_and_checkpoints_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 40, 10, 5);
    let cfg = config(HeadKind::LinearProbe, 1);
    let out = dir.path().join("run");
    train(&cache, &cfg, &out, false).unwrap();

    // A second run into the same folder without --resume.
    let err = train(&cache, &cfg, &out, false).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    // Resuming with another configuration.
    let mut other = cfg.clone();
    other.lr = 0.5;
    let err = train(&cache, &other, &out, true).unwrap_err();
    assert!(
        matches!(err, Error::Cache { .. }) && err.to_string().contains("stale checkpoint"),
        "{err}"
    );
    // Resuming on another cache.
    let cache2 = write_cache(&dir.path().join("cache2"), 40, 10, 6);
    let err = train(&cache2, &cfg, &out, true).unwrap_err();
    assert!(err.to_string().contains("another feature cache"), "{err}");
    // A truncated checkpoint.
    let ckpt = out.join("checkpoint.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    let err = train(&cache, &cfg, &out, true).unwrap_err();
    assert!(
        matches!(err, Error::Cache { .. }) && err.to_string().contains("checkpoint.safetensors"),
        "{err}"
    );

    // A corrupt shard is named in the error.
    let shard = dir.path().join("cache/train/shard-00001.safetensors");
    std::fs::write(&shard, b"not a safetensors file").unwrap();
    let err = train(&cache, &cfg, &dir.path().join("run2"), false).unwrap_err();
    assert!(
        matches!(err, Error::Cache { .. }) && err.to_string().contains("shard-00001"),
        "{err}"
    );
}

/// Batches come in the order asked for while the next one is read ahead, and an error from the
/// consumer ends the pass at once (the reader stops instead of hanging).
#[test]
fn batches_arrive_in_order_and_a_failing_consumer_stops_the_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 40, 10, 6);
    let order: Vec<usize> = (0..40).rev().collect();
    let mut seen = Vec::new();
    cache
        .visit_batches("train", &order, 7, |rows| {
            seen.extend(rows.index.iter().map(|&i| i as usize));
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, order);
    let mut calls = 0;
    let err = cache
        .visit_batches("train", &order, 7, |_| {
            calls += 1;
            if calls == 2 {
                Err(infodisent::Error::Config("stop here".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert_eq!(calls, 2);
    assert!(err.to_string().contains("stop here"));
}

/// The images held in memory give the batches streaming from the cache gives, bit for bit, in
/// the same shuffled order (so a run does not depend on whether its images fit in memory), and
/// items not held in memory are streamed.
#[test]
fn resident_and_streamed_batches_are_the_same() {
    use infodisent::train::Images;
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 40, 10, 6);
    let items: Vec<usize> = (3..37).collect();
    let resident = Images::new(&cache, "train", &items).unwrap();
    let streamed = Images::new(&cache, "train", &[]).unwrap();
    let collect = |images: &Images, items: &[usize]| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut out = Vec::new();
        images
            .for_each_batch(items, 8, Some(&mut rng), |b| {
                out.push((b.n, b.pixels, b.labels));
                Ok(())
            })
            .unwrap();
        out
    };
    let from_memory = collect(&resident, &items);
    assert_eq!(from_memory.len(), 5, "34 images in batches of 8");
    assert_eq!(from_memory, collect(&streamed, &items));
    // Item 0 was not kept: the pass streams and still agrees.
    let more: Vec<usize> = (0..20).collect();
    assert_eq!(collect(&resident, &more), collect(&streamed, &more));
}

#[test]
fn a_dynamic_checkpoint_of_the_earlier_composition_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = write_cache(&dir.path().join("cache"), 40, 10, 4);
    let mut cfg = config(HeadKind::InfoDisent, 2);
    cfg.head.rotation = Parametrization::Expm;
    cfg.head.rebase_every = 1;
    let out = dir.path().join("run");
    train_partial(&cache, &cfg, &out, false, Some(1)).unwrap();
    // Rename the base as versions with U = U₀ · rotation(A) wrote it.
    let path = out.join("checkpoint.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| (name.replace("dynamic_base", "rotation_base"), t))
        .collect();
    assert!(tensors.iter().any(|(n, _)| n == "rotation_base"));
    let renamed = safetensors::serialize(tensors, meta.metadata().clone()).unwrap();
    std::fs::write(&path, renamed).unwrap();
    let e = train(&cache, &cfg, &out, true).unwrap_err();
    assert_eq!(e.exit_code(), 5, "{e}");
    assert!(e.to_string().contains("earlier version"), "{e}");
}

#[test]
fn defaults_give_a_small_folder_the_minimum_steps_and_keep_the_best_pruned_epoch() {
    use infodisent::train::{plan, standard_error, EpochMetrics, DEFAULT_MIN_STEPS};
    let dir = tempfile::tempdir().unwrap();
    // 30 images per class, as a small CUB-like folder has.
    let cache = write_cache(&dir.path().join("cache"), 30 * CLASSES, 30, 11);
    let cfg = TrainConfig {
        seed: 3,
        ..TrainConfig::default()
    };
    let (holdout, schedule) = plan(&cache, &cfg).unwrap();
    // 10 % of each class validates: 3 of 30.
    assert_eq!(holdout.val.len(), 3 * CLASSES);
    assert_eq!(schedule.train_items, 27 * CLASSES);
    // 81 images at batch 64 make 2 steps an epoch: 10 epochs would be 20 steps, so the
    // schedule takes the epochs that reach the minimum.
    assert_eq!(schedule.steps_per_epoch, 2);
    assert_eq!(schedule.total_steps, DEFAULT_MIN_STEPS);
    assert_eq!(schedule.epochs, (DEFAULT_MIN_STEPS / 2) as usize);
    let prune = schedule.prune_epoch.unwrap();
    let patience = schedule.patience.unwrap();

    let out = dir.path().join("head");
    let summary = train(&cache, &cfg, &out, false).unwrap();
    assert_eq!(summary.schedule, schedule);
    let log: Vec<EpochMetrics> =
        infodisent::checkpoint::read_log(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(log.len(), summary.epochs);
    // Only epochs after pruning count; the one kept is the last within one standard error of
    // the best so far, and the run stops after `patience` epochs without such a one.
    let (mut best, mut kept, mut since) = (f64::MIN, None, 0);
    for m in log.iter().filter(|m| m.epoch > prune) {
        let acc = m.val_acc.unwrap();
        best = best.max(acc);
        if acc >= best - standard_error(best, holdout.val.len()) {
            kept = Some((m.epoch, acc));
            since = 0;
        } else {
            since += 1;
        }
    }
    let (kept_epoch, kept_acc) = kept.unwrap();
    assert_eq!(summary.best_val_acc, Some(best));
    assert_eq!(summary.best_epoch, Some(kept_epoch));
    assert_eq!(summary.kept_val_acc, Some(kept_acc));
    if summary.stopped_early {
        assert_eq!(since, patience);
        assert_eq!(summary.epochs - kept_epoch, patience);
    } else {
        assert_eq!(summary.steps, DEFAULT_MIN_STEPS);
    }
    // The head written is that epoch's parameters, pruned to at most keep_top weights a class.
    let saved: infodisent::checkpoint::Checkpoint<serde_json::Value> =
        infodisent::checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    let head = HeadParams::load(out.join("head.safetensors")).unwrap();
    let best_w: Vec<f32> = saved
        .tensor("best.w_raw", &[CLASSES, head.dim])
        .unwrap()
        .into_iter()
        .map(|w| w.max(0.0))
        .collect();
    assert_eq!(head.weight, best_w);
    for row in head.weight.chunks(head.dim) {
        assert!(row.iter().filter(|&&w| w > 0.0).count() <= DEFAULT_KEEP_TOP);
    }
}
