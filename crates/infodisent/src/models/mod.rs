//! Built-in backbones: the registry of names usable wherever a model is asked for.

pub mod efficientnet_lite;
pub mod pth;

use crate::error::{Error, Result};
use crate::onnx::model::PreparedModel;
use crate::preprocess::Preprocess;

/// A built-in model: its name, weight asset and input side.
#[derive(Debug, Clone, Copy)]
pub struct BuiltIn {
    /// Name accepted by `--model`.
    pub name: &'static str,
    /// Weight file inside the asset folder.
    pub weights: &'static str,
    /// Input side the weights were trained at.
    pub size: usize,
}

/// Every built-in model.
pub const BUILT_INS: [BuiltIn; 3] = [
    BuiltIn {
        name: "efficientnet-lite0",
        weights: "weights/efficientnet-lite0.pth",
        size: 224,
    },
    BuiltIn {
        name: "efficientnet-lite1",
        weights: "weights/efficientnet-lite1.pth",
        size: 240,
    },
    BuiltIn {
        name: "efficientnet-lite2",
        weights: "weights/efficientnet-lite2.pth",
        size: 260,
    },
];

/// The built-in called `name`, if any.
pub fn find(name: &str) -> Option<&'static BuiltIn> {
    BUILT_INS.iter().find(|b| b.name == name)
}

/// Builds a built-in model from its weights, with its preprocessing and the ImageNet class names.
/// `feature_node` overrides the default feature map (the head's last ReLU6).
pub fn load(name: &str, feature_node: Option<&str>) -> Result<PreparedModel> {
    let spec = find(name).ok_or_else(|| {
        let names: Vec<_> = BUILT_INS.iter().map(|b| b.name).collect();
        Error::Config(format!(
            "unknown built-in model `{name}` (known: {})",
            names.join(", ")
        ))
    })?;
    let path = crate::assets::asset(spec.weights)?;
    let weights = pth::read_state_dict(&path)?;
    let graph = efficientnet_lite::build(&weights, &path)?;
    let mut model =
        crate::onnx::prepare_sized(graph, &path, spec.name, feature_node, Some(spec.size))?;
    model.preprocess = Preprocess::efficientnet_lite(spec.size);
    model.class_names = Some(crate::assets::imagenet_labels()?);
    Ok(model)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_built_in_has_pinned_weights_to_fetch_on_first_use() {
        for b in super::BUILT_INS {
            let rel = std::path::Path::new(b.weights);
            assert!(crate::assets::fetch::is_pinned(rel), "{}", b.name);
        }
    }
}
