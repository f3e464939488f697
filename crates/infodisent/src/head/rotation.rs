//! The orthogonal channel map U(A) as a candle op: `expm(A − Aᵀ)` (default) or the Cayley map,
//! each with its exact hand-written backward pass, optionally followed by a fixed base rotation:
//! `U = rotation(A) · U₀`, the dynamic trivialization (Lezcano-Casado, NeurIPS 2019). Training
//! then folds `rotation(A)` into `U₀` and resets A to 0 every few steps (`Head::rebase`), so the
//! map is only ever evaluated near A = 0, where it is cheap (at A = 0 it is the identity and
//! its backward pass a transpose). The base sits on the right so that, at A = 0, the gradient
//! of `rotation(A)` is read off pixels already rotated by `U₀` (`Head::logits`) rather than
//! multiplied by `U₀ᵀ`: one D×D product fewer per step.

use super::cayley::{cayley_skew, cayley_times, CayleyTape};
use super::expm::{expm_skew, ExpmTape, Plan};
use super::linalg::{matmul, Real};
use super::pool::with_slice;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// How U is generated from the unconstrained parameter A.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parametrization {
    /// U = expm(A − Aᵀ), as in the paper.
    #[default]
    Expm,
    /// U = (I + S)⁻¹(I − S), S = A − Aᵀ: cheaper, covers SO(D) minus rotations with eigenvalue −1.
    Cayley,
    /// No A: only the rows of U the classes can use, trained as an orthonormal frame on the
    /// Stiefel manifold and completed to a full rotation at export.
    Frame,
}

enum Tape<T> {
    Expm(ExpmTape<T>),
    Cayley(CayleyTape<T>),
}

impl<T: Real> Tape<T> {
    fn backward_a(&self, g: &[T]) -> Vec<T> {
        match self {
            Tape::Expm(t) => t.backward_a(g),
            Tape::Cayley(t) => t.backward_a(g),
        }
    }
}

/// U and its tape for one parametrization, in any supported precision.
fn forward<T: Real>(p: Parametrization, d: usize, a: &[T]) -> (Vec<T>, Tape<T>) {
    match p {
        // A frame head has no A and never builds this op; read as a map of A, its U is expm's.
        Parametrization::Expm | Parametrization::Frame => {
            let (u, t) = expm_skew(d, a);
            (u, Tape::Expm(t))
        }
        Parametrization::Cayley => {
            let (u, t) = cayley_skew(d, a);
            (u, Tape::Cayley(t))
        }
    }
}

#[derive(Default)]
struct Tapes {
    f32: Option<Tape<f32>>,
    f64: Option<Tape<f64>>,
}

/// The candle op A [D, D] → U [D, D].
pub struct Rotation {
    parametrization: Parametrization,
    /// `U₀` (f32, [D, D]) of a dynamic trivialization.
    base: Option<Arc<Vec<f32>>>,
    tapes: Mutex<Tapes>,
    plan: Mutex<Option<Plan>>,
}

impl Rotation {
    /// A fresh op (one per forward pass: it keeps that pass's tape).
    pub fn new(parametrization: Parametrization) -> Self {
        Self::with_base(parametrization, None)
    }

    /// The op `A ↦ rotation(A) · U₀` (f32 only); `None` is [`Rotation::new`].
    pub fn with_base(parametrization: Parametrization, base: Option<Arc<Vec<f32>>>) -> Self {
        Rotation {
            parametrization,
            base,
            tapes: Mutex::new(Tapes::default()),
            plan: Mutex::new(None),
        }
    }

    /// The expm plan the last forward pass used (None for Cayley).
    pub fn plan(&self) -> Option<Plan> {
        self.plan.lock().ok().and_then(|p| *p)
    }
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("rotation tape poisoned by an earlier panic".into())
}

impl CustomOp1 for Rotation {
    fn name(&self) -> &'static str {
        "orthogonal-rotation"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = layout.dims();
        if dims.len() != 2 || dims[0] != dims[1] {
            candle_core::bail!("rotation parameter must be square, got {dims:?}");
        }
        let d = dims[0];
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("rotation parameter must be contiguous")
        };
        let mut tapes = self.tapes.lock().map_err(|_| poisoned())?;
        let out = match storage {
            CpuStorage::F32(a) => {
                let a = &a[start..end];
                let (r, t) = forward(self.parametrization, d, a);
                if let Tape::Expm(e) = &t {
                    *self.plan.lock().map_err(|_| poisoned())? = Some(e.plan());
                }
                tapes.f32 = Some(t);
                // `Head::logits` never brings A = 0 here with a base: it rotates the pixels by U₀
                // itself and asks for rotation(A) alone.
                let u = match &self.base {
                    None => r,
                    Some(base) => {
                        if base.len() != d * d {
                            candle_core::bail!("rotation base does not match a [{d}, {d}] A");
                        }
                        matmul(d, &r, false, base, false)
                    }
                };
                CpuStorage::F32(u)
            }
            CpuStorage::F64(_) if self.base.is_some() => {
                candle_core::bail!("a rotation with a base runs in f32")
            }
            CpuStorage::F64(a) => {
                let (u, t) = forward(self.parametrization, d, &a[start..end]);
                tapes.f64 = Some(t);
                CpuStorage::F64(u)
            }
            _ => candle_core::bail!("rotation parameter must be f32 or f64"),
        };
        Ok((out, Shape::from((d, d))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let tapes = self.tapes.lock().map_err(|_| poisoned())?;
        let d = arg.dims()[0];
        let missing = || candle_core::Error::Msg("rotation backward without a forward pass".into());
        let grad = match (&tapes.f32, &tapes.f64) {
            (Some(t), _) => with_slice(
                grad_res,
                |g| {
                    // U = R U₀  ⇒  ∂L/∂R = ∂L/∂U U₀ᵀ.
                    Ok(match &self.base {
                        Some(base) => t.backward_a(&matmul(d, g, false, base, true)),
                        None => t.backward_a(g),
                    })
                },
                |_| Err(missing()),
            )?
            .map(|v| Tensor::from_vec(v, (d, d), arg.device())),
            (_, Some(t)) => with_slice(grad_res, |_| Err(missing()), |g| Ok(t.backward_a(g)))?
                .map(|v| Tensor::from_vec(v, (d, d), arg.device())),
            _ => return Err(missing()),
        }??;
        Ok(Some(grad))
    }
}

/// U = rotation(A) as a plain f32 matrix (no autograd), e.g. for exporting a trained head.
pub fn rotation_f32(parametrization: Parametrization, d: usize, a: &[f32]) -> Vec<f32> {
    forward(parametrization, d, a).0
}

/// `rotation(A) · U₀` as a plain f32 matrix: the dynamic trivialization's U, and its rebase.
/// At A = 0 it is U₀ itself; the Cayley map applies itself to U₀ with one LU solve.
pub fn rotation_times(
    parametrization: Parametrization,
    d: usize,
    a: &[f32],
    base: Option<&[f32]>,
) -> Vec<f32> {
    match base {
        None => rotation_f32(parametrization, d, a),
        Some(base) if a.iter().all(|&x| x == 0.0) => base.to_vec(),
        Some(base) => match parametrization {
            Parametrization::Expm | Parametrization::Frame => {
                matmul(d, &rotation_f32(parametrization, d, a), false, base, false)
            }
            Parametrization::Cayley => cayley_times(d, a, base),
        },
    }
}

/// U = rotation(A) in f64 with its tape, for gradient checks.
pub fn rotation_f64_with_grad(
    parametrization: Parametrization,
    d: usize,
    a: &[f64],
    grad_u: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let (u, tape) = forward(parametrization, d, a);
    let g = tape.backward_a(grad_u);
    (u, g)
}
