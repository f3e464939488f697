//! Models whose weights live in an external file beside the graph (`torch.onnx.export`'s default):
//! they load by path from any working directory, their classifier is read from the external
//! file, offsets past 2 GiB work, a changed data file changes the fingerprint, and a model whose
//! data points outside its folder is refused before anything is read.

#[allow(dead_code)]
mod onnx_common;

use infodisent::engine::Backbone;
use infodisent::onnx;
use infodisent::Error;
use onnx_protobuf::{tensor_proto::DataLocation, ModelProto, StringStringEntryProto};
use protobuf::Message;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = key.to_owned();
    e.value = value.to_owned();
    e
}

/// Moves every float initializer's bytes into `data_name` (written in `dir`, the first tensor at
/// `first_offset`) and saves the graph as `dir/model.onnx`; `location` overrides the location
/// written into the graph (the data file is still written as `data_name`).
fn save_external(
    mut model: ModelProto,
    dir: &Path,
    data_name: &str,
    location: Option<&str>,
    first_offset: u64,
) -> std::path::PathBuf {
    let mut data = std::fs::File::create(dir.join(data_name)).unwrap();
    let mut offset = first_offset;
    for t in &mut model.graph.as_mut().unwrap().initializer {
        if t.data_type != 1 {
            continue;
        }
        let bytes: Vec<u8> = if t.raw_data.is_empty() {
            t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else {
            std::mem::take(&mut t.raw_data)
        };
        t.float_data.clear();
        data.seek(SeekFrom::Start(offset)).unwrap();
        data.write_all(&bytes).unwrap();
        t.data_location = DataLocation::EXTERNAL.into();
        t.external_data = vec![
            entry("location", location.unwrap_or(data_name)),
            entry("offset", &offset.to_string()),
            entry("length", &bytes.len().to_string()),
        ];
        offset += bytes.len() as u64;
    }
    let path = dir.join("model.onnx");
    std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
    path
}

/// Runs in another working directory, like a user whose model sits elsewhere.
fn elsewhere() -> tempfile::TempDir {
    let cwd = tempfile::tempdir().unwrap();
    std::env::set_current_dir(cwd.path()).unwrap();
    cwd
}

#[test]
fn external_weights_load_from_any_folder_and_match_the_inline_model() {
    let _cwd = elsewhere();
    let (graph, head) = onnx_common::resnet();
    let inline = Backbone::from_prepared(
        onnx::prepare(graph.clone(), Path::new("inline.onnx"), "inline", None).unwrap(),
        1,
    )
    .unwrap();
    let models = tempfile::tempdir().unwrap();
    // Offsets past 2 GiB (a sparse file: the hole costs no disk) need 64-bit reads end to end.
    for first_offset in [0, (1u64 << 31) + 4096] {
        let path = save_external(
            graph.clone(),
            models.path(),
            "model.onnx.data",
            None,
            first_offset,
        );
        let mut net = Backbone::load(path.to_str().unwrap(), None, 1).unwrap();
        let c = net
            .model()
            .classifier
            .clone()
            .expect("classifier read from the data file");
        assert_eq!(
            (c.weight.clone(), c.bias.clone()),
            (head.weight.clone(), head.bias.clone())
        );
        assert_eq!(
            net.model().external.as_ref().map(|e| e.dir().to_path_buf()),
            Some(models.path().canonicalize().unwrap())
        );
        let out = net.run(&onnx_common::inputs(2), 2).unwrap();
        let mut reference = Backbone::from_prepared(inline.model().clone(), 1).unwrap();
        let want = reference.run(&onnx_common::inputs(2), 2).unwrap();
        assert_eq!(out.features, want.features);
        assert_eq!(out.logits, want.logits);
    }
}

#[test]
fn a_changed_data_file_changes_the_fingerprint() {
    let (graph, _) = onnx_common::resnet();
    let dir = tempfile::tempdir().unwrap();
    let path = save_external(graph, dir.path(), "w.bin", None, 0);
    let before = onnx::prepare_file(&path, None).unwrap().fingerprint;
    assert_eq!(onnx::prepare_file(&path, None).unwrap().fingerprint, before);
    let mut bytes = std::fs::read(dir.path().join("w.bin")).unwrap();
    bytes[0] ^= 1;
    std::fs::write(dir.path().join("w.bin"), bytes).unwrap();
    assert_ne!(onnx::prepare_file(&path, None).unwrap().fingerprint, before);
}

#[test]
fn data_outside_the_model_folder_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let secret = root.path().join("secret.bin");
    std::fs::write(&secret, vec![0u8; 4096]).unwrap();
    let models = root.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::os::unix::fs::symlink(&secret, models.join("link.bin")).unwrap();
    let absolute = secret.to_str().unwrap().to_owned();
    let cases = [
        ("../secret.bin", "a `..` component"),
        ("sub/../../secret.bin", "a `..` component"),
        (absolute.as_str(), "an absolute path"),
        ("link.bin", "a link that leaves the folder"),
    ];
    for (location, why) in cases {
        let (graph, _) = onnx_common::resnet();
        let path = save_external(graph, &models, "real.bin", Some(location), 0);
        let err = onnx::prepare_file(&path, None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Model { .. }), "{location}: {msg}");
        assert!(
            msg.contains("outside the model's folder") && msg.contains(why),
            "{location}: {msg}"
        );
        assert!(msg.contains("model.onnx"), "names the model: {msg}");
    }
}

#[test]
fn missing_or_short_data_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, _) = onnx_common::resnet();
    let path = save_external(graph.clone(), dir.path(), "w.bin", Some("absent.bin"), 0);
    let msg = onnx::prepare_file(&path, None).unwrap_err().to_string();
    assert!(
        msg.contains("absent.bin") && msg.contains("cannot be opened"),
        "{msg}"
    );

    let path = save_external(graph, dir.path(), "w.bin", None, 0);
    let data = dir.path().join("w.bin");
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len - 8)
        .unwrap();
    let msg = onnx::prepare_file(&path, None).unwrap_err().to_string();
    assert!(
        msg.contains("w.bin") && msg.contains("which holds"),
        "{msg}"
    );
}
