//! The head's hand-written gradients against finite differences and against candle's autograd on
//! the dense reference, and the orthogonality of the rotation.

use candle_core::{DType, Device, Tensor, Var};
use infodisent::head::expm::{choose_plan, expm_skew, expm_with_plan};
use infodisent::head::linalg::{matmul, norm1, orthogonality_defect, skew};
use infodisent::head::params::sparse_pool;
use infodisent::head::pool::RotatePool;
use infodisent::head::reference;
use infodisent::head::rotation::{rotation_f64_with_grad, Parametrization, Rotation};
use rand::{Rng, SeedableRng};

fn random(len: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| scale * (2.0 * rng.random::<f64>() - 1.0))
        .collect()
}

/// ∂⟨G, U(A)⟩/∂A by the op's backward against central differences, in f64.
fn check_rotation_gradient(p: Parametrization, d: usize, scale: f64) {
    let a = random(d * d, scale, 1);
    let g = random(d * d, 1.0, 2);
    let (_, grad) = rotation_f64_with_grad(p, d, &a, &g);
    let objective = |a: &[f64]| -> f64 {
        let (u, _) = rotation_f64_with_grad(p, d, a, &g);
        u.iter().zip(&g).map(|(x, y)| x * y).sum()
    };
    let h = 1e-6;
    let mut worst = 0.0f64;
    for i in 0..d * d {
        let mut plus = a.clone();
        plus[i] += h;
        let mut minus = a.clone();
        minus[i] -= h;
        let fd = (objective(&plus) - objective(&minus)) / (2.0 * h);
        worst = worst.max((fd - grad[i]).abs() / (1.0 + fd.abs()));
    }
    assert!(
        worst < 1e-7,
        "{p:?} at D={d}, scale {scale}: worst relative gradient error {worst}"
    );
}

#[test]
fn expm_gradient_matches_central_differences() {
    // Small norm (no squaring) and large norm (several squarings, high degree).
    check_rotation_gradient(Parametrization::Expm, 5, 0.05);
    check_rotation_gradient(Parametrization::Expm, 7, 1.5);
    let s = skew(7, &random(49, 1.5, 1));
    assert!(
        choose_plan(norm1(7, &s), f64::EPSILON / 2.0).squarings > 0,
        "the large case must exercise squaring"
    );
}

#[test]
fn cayley_gradient_matches_central_differences() {
    check_rotation_gradient(Parametrization::Cayley, 6, 0.3);
}

#[test]
fn cayley_matches_its_definition() {
    // (I + S) U = I − S.
    let d = 9;
    let a = random(d * d, 0.4, 5);
    let (u, _) = rotation_f64_with_grad(Parametrization::Cayley, d, &a, &vec![0.0; d * d]);
    let s = skew(d, &a);
    let mut lhs = matmul(d, &s, false, &u, false);
    for (l, x) in lhs.iter_mut().zip(&u) {
        *l += x;
    }
    for i in 0..d {
        for j in 0..d {
            let target = if i == j { 1.0 } else { 0.0 } - s[i * d + j];
            assert!((lhs[i * d + j] - target).abs() < 1e-12);
        }
    }
}

#[test]
fn expm_is_orthogonal_in_f32() {
    // Entries of a trained A are ~1e-2; 0.05 gives ‖S‖₁ ≈ 6 at D = 256, several squarings under
    // the 1-norm. The full D = 2048 check is printed by `infodisent bench train`.
    let d = 256;
    let a: Vec<f32> = random(d * d, 0.05, 3)
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let (u, tape) = expm_skew(d, &a);
    let defect = orthogonality_defect(d, &u);
    assert!(
        defect <= 1e-4,
        "‖UᵀU − I‖ = {defect} with plan {:?}",
        tape.plan()
    );
    // And U matches the f64 result computed with a conservative plan.
    let a64: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
    let s64 = skew(d, &a64);
    let plan = choose_plan(norm1(d, &s64), f64::EPSILON / 2.0);
    let (u64_, _) = expm_with_plan(d, &s64, plan);
    let err = u
        .iter()
        .zip(&u64_)
        .fold(0.0f64, |m, (x, y)| m.max((f64::from(*x) - y).abs()));
    assert!(err < 1e-5, "f32 U differs from f64 U by {err}");
}

#[test]
fn structured_gradients_equal_dense_autograd() {
    let (n, cells, d, c) = (5, 4, 8, 3);
    let dev = Device::Cpu;
    let a =
        Var::from_tensor(&Tensor::from_vec(random(d * d, 0.3, 7), (d, d), &dev).unwrap()).unwrap();
    let w =
        Var::from_tensor(&Tensor::from_vec(random(c * d, 1.0, 8), (c, d), &dev).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::from_vec(random(c, 1.0, 9), c, &dev).unwrap()).unwrap();
    let pixels = Tensor::from_vec(random(n * cells * d, 2.0, 10), (n * cells, d), &dev).unwrap();
    let labels = Tensor::from_vec(vec![0u32, 2, 1, 1, 0], n, &dev).unwrap();

    let logits_ref = reference::logits_dense(
        a.as_tensor(),
        w.as_tensor(),
        b.as_tensor(),
        &pixels,
        n,
        cells,
    )
    .unwrap();
    let loss_ref = reference::cross_entropy(&logits_ref, &labels).unwrap();
    let grads_ref = loss_ref.backward().unwrap();

    let u = a
        .as_tensor()
        .apply_op1(Rotation::new(Parametrization::Expm))
        .unwrap();
    let v = u.apply_op2(&pixels, RotatePool::new(n, cells)).unwrap();
    let logits = v
        .matmul(&w.as_tensor().relu().unwrap().t().unwrap())
        .unwrap()
        .broadcast_add(b.as_tensor())
        .unwrap();
    let loss = reference::cross_entropy(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();

    let close = |x: &Tensor, y: &Tensor, what: &str| {
        let diff = (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(diff < 1e-10, "{what} differs by {diff}");
    };
    close(&logits, &logits_ref, "logits");
    for (var, name) in [(&a, "A"), (&w, "W_raw"), (&b, "bias")] {
        close(
            grads.get(var.as_tensor()).unwrap(),
            grads_ref.get(var.as_tensor()).unwrap(),
            name,
        );
    }
    assert!(
        grads
            .get(a.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            > 1e-6
    );
}

#[test]
fn a_frame_of_fewer_rows_pools_and_differentiates_like_the_dense_reference() {
    // 3 rows of a 9-channel rotation: the fused op's values and its 2-pixels-per-channel
    // gradient must equal dense autograd through the same rectangular U.
    let (n, cells, d, m) = (4, 6, 9, 3);
    let dev = Device::Cpu;
    let u =
        Var::from_tensor(&Tensor::from_vec(random(m * d, 0.5, 21), (m, d), &dev).unwrap()).unwrap();
    let pixels = Tensor::from_vec(random(n * cells * d, 2.0, 22), (n * cells, d), &dev).unwrap();
    let g = Tensor::from_vec(random(n * m, 1.0, 23), (n, m), &dev).unwrap();
    let fused = u
        .as_tensor()
        .apply_op2(&pixels, RotatePool::new(n, cells))
        .unwrap();
    let dense = reference::rotate_pool_dense(u.as_tensor(), &pixels, n, cells).unwrap();
    assert_eq!(fused.dims(), &[n, m]);
    let gf = (&fused * &g)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gd = (&dense * &g)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let diff = |x: &Tensor, y: &Tensor| {
        (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    assert!(diff(&fused, &dense) < 1e-12);
    let (a, b) = (
        gf.get(u.as_tensor()).unwrap(),
        gd.get(u.as_tensor()).unwrap(),
    );
    assert_eq!(a.dims(), &[m, d]);
    assert!(
        diff(a, b) < 1e-12,
        "frame gradient differs by {}",
        diff(a, b)
    );
}

#[test]
fn pooling_matches_the_inference_pooling() {
    let (n, cells, d) = (3, 49, 16);
    let dev = Device::Cpu;
    let a: Vec<f32> = random(d * d, 0.2, 11)
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let pixels: Vec<f32> = random(n * cells * d, 1.0, 12)
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let (u, _) = expm_skew(d, &a);
    let ut = Tensor::from_vec(u.clone(), (d, d), &dev).unwrap();
    let pt = Tensor::from_vec(pixels.clone(), (n * cells, d), &dev).unwrap();
    let v = ut
        .apply_op2_no_bwd(&pt, &RotatePool::new(n, cells))
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let v = v.to_vec2::<f32>().unwrap();
    for b in 0..n {
        // head::params works on [D, cells] maps: J = U F.
        let mut j = vec![0.0f32; d * cells];
        for k in 0..d {
            for r in 0..cells {
                j[k * cells + r] = (0..d)
                    .map(|i| u[k * d + i] * pixels[(b * cells + r) * d + i])
                    .sum();
            }
        }
        let p = sparse_pool(&j, d, cells);
        assert_eq!((p.v.len(), v[b].len()), (d, d));
        for (k, (ours, theirs)) in p.v.iter().zip(&v[b]).enumerate() {
            assert!(
                (ours - theirs).abs() < 1e-5,
                "image {b} channel {k}: {ours} vs {theirs}"
            );
        }
    }
}

#[test]
fn gumbel_training_sees_the_inference_pooling() {
    use infodisent::head::{Head, HeadConfig, PixelBatch, TrainMode};
    let (dim, cells, n, classes) = (6, 9, 4, 3);
    let maps: Vec<f32> = (0..n * dim * cells)
        .map(|i| ((i * 7919 % 23) as f32 - 11.0) / 5.0)
        .collect();
    let batch = PixelBatch::from_maps(&maps, vec![0, 1, 2, 0], dim, cells);
    let config = HeadConfig {
        gumbel: true,
        ..HeadConfig::default()
    };
    let head = Head::new(config, dim, classes, 5).unwrap();
    let inference = head.logits(&batch, None).unwrap().to_vec2::<f32>().unwrap();
    for (tau, seed) in [(1.0, 1), (0.3, 2), (0.1, 3)] {
        let mode = TrainMode {
            tau,
            noise_seed: seed,
        };
        let train = head
            .logits(&batch, Some(mode))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (a, b) in train.iter().flatten().zip(inference.iter().flatten()) {
            assert!(
                (a - b).abs() < 1e-5,
                "τ {tau}: training {a} vs inference {b}"
            );
        }
    }
}

/// The dynamic trivialization: folding the rotation into the base changes no logit, leaves
/// A = 0 and U orthogonal, and the gradient of A at the base matches central differences of the
/// loss through `rotation(A) · U₀`, for the exponential and for the Cayley map (whose rebase is
/// an LU solve when LAPACK is loaded, and whose backward at A = 0 takes a shortcut).
#[test]
fn rebasing_keeps_the_function_and_the_gradient_is_exact_at_the_base() {
    check_rebase(Parametrization::Expm);
    check_rebase(Parametrization::Cayley);
}

fn check_rebase(rotation: Parametrization) {
    use infodisent::head::{Head, HeadConfig, PixelBatch};
    let (d, cells, n, classes) = (12, 4, 5, 3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let maps: Vec<f32> = (0..n * d * cells).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % classes as u32).collect();
    let batch = PixelBatch::from_maps(&maps, labels.clone(), d, cells);
    let cfg = HeadConfig {
        rotation,
        rebase_every: 1,
        w_init: 0.5,
        ..HeadConfig::default()
    };
    let head = Head::new(cfg, d, classes, 1).unwrap();
    let a: Vec<f32> = random(d * d, 0.3, 4).iter().map(|&x| x as f32).collect();
    head.vars()[0]
        .1
        .set(&Tensor::from_slice(&a, (d, d), &Device::Cpu).unwrap())
        .unwrap();
    let before = head.logits(&batch, None).unwrap().to_vec2::<f32>().unwrap();
    head.rebase().unwrap();
    let after = head.logits(&batch, None).unwrap().to_vec2::<f32>().unwrap();
    for (x, y) in before.iter().flatten().zip(after.iter().flatten()) {
        assert!((x - y).abs() < 1e-5, "{rotation:?}: {x} vs {y}");
    }
    let a_now = head.vars()[0].1.as_tensor().flatten_all().unwrap();
    assert!(a_now.to_vec1::<f32>().unwrap().iter().all(|&x| x == 0.0));
    assert!(orthogonality_defect(d, &head.rotation().unwrap()) < 1e-5);

    // ∂L/∂A at A = 0 against central differences in A (f32, so a loose tolerance).
    let loss = |head: &Head| -> f64 {
        let logits = head.logits(&batch, None).unwrap();
        f64::from(
            head.loss(&logits, &labels, None)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        )
    };
    let logits = head.logits(&batch, None).unwrap();
    let grads = head
        .loss(&logits, &labels, None)
        .unwrap()
        .backward()
        .unwrap();
    let var = &head.vars()[0].1;
    let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
    let g = g.to_vec1::<f32>().unwrap();
    let h = 1e-2f32;
    for &(i, j) in &[(0usize, 1usize), (3, 7), (11, 2)] {
        let shifted = |delta: f32| {
            let mut x = vec![0.0f32; d * d];
            x[i * d + j] = delta;
            var.set(&Tensor::from_slice(&x, (d, d), &Device::Cpu).unwrap())
                .unwrap();
            loss(&head)
        };
        let numeric = (shifted(h) - shifted(-h)) / (2.0 * f64::from(h));
        let exact = f64::from(g[i * d + j]);
        assert!(
            (numeric - exact).abs() <= 2e-3 * (1.0 + exact.abs()),
            "{rotation:?}: ∂L/∂A[{i},{j}]: exact {exact}, numeric {numeric}"
        );
    }
}

/// A frame head (4 of 10 channels, moved off its start) exports a full rotation whose decisions
/// are the training head's own: the completion adds rows with no weight, W lands on the frame's
/// channels.
#[test]
fn a_frame_head_exports_the_function_it_trained() {
    use infodisent::head::frame::retract;
    use infodisent::head::{Head, HeadConfig, PixelBatch, TrainedHead};
    let (d, cells, n, classes, m) = (10, 4, 6, 3, 4);
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let maps: Vec<f32> = (0..n * d * cells)
        .map(|_| rng.random::<f32>() * 2.0 - 0.5)
        .collect();
    let batch = PixelBatch::from_maps(&maps, vec![0, 1, 2, 0, 1, 2], d, cells);
    let cfg = HeadConfig {
        rotation: Parametrization::Frame,
        w_init: 0.5,
        ..HeadConfig::default()
    };
    let head = Head::with_channels(cfg, d, classes, 3, vec![1, 4, 7, 8]).unwrap();
    let frame = head.vars()[0]
        .1
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let moved: Vec<f32> = frame
        .iter()
        .zip(random(m * d, 0.4, 32))
        .map(|(&x, r)| x + r as f32)
        .collect();
    head.vars()[0]
        .1
        .set(&Tensor::from_vec(retract(m, d, &moved), (m, d), &Device::Cpu).unwrap())
        .unwrap();
    let logits = head.logits(&batch, None).unwrap().to_vec2::<f32>().unwrap();
    let TrainedHead::InfoDisent(params) = head.export().unwrap() else {
        panic!("an InfoDisent head exports InfoDisent parameters")
    };
    assert!(orthogonality_defect(d, &params.rotation) < 1e-5);
    for (b, row) in logits.iter().enumerate() {
        let decision = params
            .decide(&maps[b * d * cells..(b + 1) * d * cells], cells)
            .unwrap();
        for (x, y) in decision.logits.iter().zip(row) {
            assert!(
                (x - y).abs() < 1e-4,
                "image {b}: exported {x} vs trained {y}"
            );
        }
    }
}
