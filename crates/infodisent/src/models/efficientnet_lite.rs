//! EfficientNet-Lite0/1/2 as an ONNX graph built from the published PyTorch weights.
//!
//! Lite is EfficientNet without squeeze-excitation, with ReLU6 everywhere and a fixed stem/head
//! width. BatchNorm (eps 1e-3) is folded into the convolutions, which is exact at inference.
//! TensorFlow "SAME" padding (extra pixel at the bottom/right) is ONNX `auto_pad = SAME_UPPER`.

use super::pth::Tensor;
use crate::error::{Error, Result};
use crate::onnx::build::{Attr, GraphBuilder};
use onnx_protobuf::ModelProto;
use std::collections::HashMap;
use std::path::Path;

/// BatchNorm epsilon of the TensorFlow-trained weights.
const BN_EPS: f32 = 1e-3;

/// Stride of the first block of each of the seven stages.
const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];

/// Blocks per stage: Lite0, and Lite1/Lite2 (whose depth multipliers give the same counts).
const STAGE_REPEATS: [[usize; 7]; 2] = [[1, 2, 2, 3, 3, 4, 1], [1, 3, 3, 4, 4, 5, 1]];

/// Name of the graph's image input.
pub const INPUT: &str = "image";
/// Name of the logits output.
pub const LOGITS: &str = "logits";
/// Name of the node whose output is the last feature map (ReLU6 after the head convolution).
pub const FEATURE_NODE: &str = "head_relu6";

/// Builds the graph (input `image` `[N,3,H,W]`, output `logits` `[N,1000]`) from a state dict. The
/// input side is left symbolic: SAME padding works at any size, so other crops can be used.
pub fn build(weights: &HashMap<String, Tensor>, origin: &Path) -> Result<ModelProto> {
    let mut net = Builder {
        weights,
        origin,
        g: GraphBuilder::new("efficientnet_lite"),
    };
    net.g.input(INPUT, &[None, Some(3), None, None]);
    net.g.constant("relu6_min", &[], &[0.0]);
    net.g.constant("relu6_max", &[], &[6.0]);
    let mut x = net.conv_bn("stem", INPUT, "_conv_stem", "_bn0", 2, 1)?;
    x = net.relu6("stem_relu6", &x);
    let blocks = (0..)
        .take_while(|i| weights.contains_key(&format!("_blocks.{i}._depthwise_conv.weight")))
        .count();
    let repeats = STAGE_REPEATS
        .iter()
        .find(|r| r.iter().sum::<usize>() == blocks)
        .ok_or_else(|| {
            Error::model(
                origin,
                format!("{blocks} blocks do not match EfficientNet-Lite0/1/2 (16 or 23)"),
            )
        })?;
    let strides = repeats
        .iter()
        .zip(STAGE_STRIDES)
        .flat_map(|(&r, s)| std::iter::once(s).chain(std::iter::repeat_n(1, r - 1)));
    for (i, stride) in strides.enumerate() {
        x = net.block(i, &x, stride)?;
    }
    x = net.conv_bn("head_conv", &x, "_conv_head", "_bn1", 1, 1)?;
    x = net.relu6(FEATURE_NODE, &x);
    let pooled = net.g.node("GlobalAveragePool", "pool", &[&x], vec![]);
    let flat = net.g.node(
        "Flatten",
        "flatten",
        &[&pooled],
        vec![("axis", Attr::Int(1))],
    );
    let fc_w = net.tensor("_fc.weight")?;
    let fc_b = net.tensor("_fc.bias")?;
    let w = net.g.constant("fc.weight", &fc_w.shape, &fc_w.data);
    let b = net.g.constant("fc.bias", &fc_b.shape, &fc_b.data);
    net.g.node(
        "Gemm",
        LOGITS,
        &[&flat, &w, &b],
        vec![("transB", Attr::Int(1))],
    );
    net.g.output(LOGITS);
    Ok(net.g.finish())
}

struct Builder<'a> {
    weights: &'a HashMap<String, Tensor>,
    origin: &'a Path,
    g: GraphBuilder,
}

impl<'a> Builder<'a> {
    fn tensor(&self, name: &str) -> Result<&'a Tensor> {
        self.weights
            .get(name)
            .ok_or_else(|| Error::model(self.origin, format!("lacks tensor `{name}`")))
    }

    /// One MBConv block: optional 1×1 expansion, depthwise conv, 1×1 projection, residual.
    fn block(&mut self, i: usize, x: &str, stride: usize) -> Result<String> {
        let p = format!("_blocks.{i}");
        let mut h = x.to_owned();
        if self
            .weights
            .contains_key(&format!("{p}._expand_conv.weight"))
        {
            h = self.conv_bn(
                &format!("block{i}_expand"),
                &h,
                &format!("{p}._expand_conv"),
                &format!("{p}._bn0"),
                1,
                1,
            )?;
            h = self.relu6(&format!("block{i}_expand_relu6"), &h);
        }
        let channels = self.tensor(&format!("{p}._depthwise_conv.weight"))?.shape[0];
        h = self.conv_bn(
            &format!("block{i}_depthwise"),
            &h,
            &format!("{p}._depthwise_conv"),
            &format!("{p}._bn1"),
            stride,
            channels,
        )?;
        h = self.relu6(&format!("block{i}_depthwise_relu6"), &h);
        h = self.conv_bn(
            &format!("block{i}_project"),
            &h,
            &format!("{p}._project_conv"),
            &format!("{p}._bn2"),
            1,
            1,
        )?;
        let in_channels = self.in_channels(i)?;
        let out_channels = self.tensor(&format!("{p}._project_conv.weight"))?.shape[0];
        if stride == 1 && in_channels == out_channels {
            h = self
                .g
                .node("Add", &format!("block{i}_add"), &[&h, x], vec![]);
        }
        Ok(h)
    }

    fn in_channels(&self, i: usize) -> Result<usize> {
        let p = format!("_blocks.{i}");
        let first = self
            .weights
            .get(&format!("{p}._expand_conv.weight"))
            .map_or_else(|| self.tensor(&format!("{p}._depthwise_conv.weight")), Ok)?;
        Ok(
            if self
                .weights
                .contains_key(&format!("{p}._expand_conv.weight"))
            {
                first.shape[1]
            } else {
                first.shape[0]
            },
        )
    }

    /// A bias-free convolution followed by BatchNorm, folded into one Conv with bias.
    fn conv_bn(
        &mut self,
        name: &str,
        x: &str,
        conv: &str,
        bn: &str,
        stride: usize,
        group: usize,
    ) -> Result<String> {
        let w = self.tensor(&format!("{conv}.weight"))?;
        let [gamma, beta, mean, var] = ["weight", "bias", "running_mean", "running_var"]
            .map(|k| self.tensor(&format!("{bn}.{k}")).map(|t| &t.data));
        let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
        let out = w.shape[0];
        if w.shape.len() != 4 || [gamma.len(), beta.len(), mean.len(), var.len()] != [out; 4] {
            return Err(Error::model(
                self.origin,
                format!("`{conv}.weight` {:?} does not fit `{bn}`", w.shape),
            ));
        }
        let per_out = w.data.len() / out;
        let scale: Vec<f32> = gamma
            .iter()
            .zip(var)
            .map(|(g, v)| g / (v + BN_EPS).sqrt())
            .collect();
        let weight: Vec<f32> = w
            .data
            .iter()
            .enumerate()
            .map(|(i, v)| v * scale[i / per_out])
            .collect();
        let bias: Vec<f32> = (0..out).map(|c| beta[c] - mean[c] * scale[c]).collect();
        let wn = self
            .g
            .constant(&format!("{name}.weight"), &w.shape, &weight);
        let bn_ = self.g.constant(&format!("{name}.bias"), &[out], &bias);
        let (kh, kw) = (w.shape[2] as i64, w.shape[3] as i64);
        Ok(self.g.node(
            "Conv",
            name,
            &[x, &wn, &bn_],
            vec![
                ("kernel_shape", Attr::Ints(vec![kh, kw])),
                ("strides", Attr::Ints(vec![stride as i64; 2])),
                ("group", Attr::Int(group as i64)),
                ("auto_pad", Attr::Str("SAME_UPPER".into())),
            ],
        ))
    }

    fn relu6(&mut self, name: &str, x: &str) -> String {
        self.g
            .node("Clip", name, &[x, "relu6_min", "relu6_max"], vec![])
    }
}
