//! The fused rotation + sparse max/min pooling: `v_k = max_r ReLU(J_k[r]) − max_r ReLU(−J_k[r])`
//! with `J = U · F` per pixel, as a candle op whose backward touches only the two selected pixels
//! per channel.
//!
//! U has m rows of D: the whole rotation (m = D) or the rows a [frame](super::frame) trains.
//! Pixels are laid out `[n·cells, D]` (one row per pixel), so `J = F Uᵀ` is one GEMM per chunk of
//! images. The backward pass is `∂L/∂U[k, :] = Σ_b g⁺_{bk} F_b[argmax_{bk}, :] + g⁻_{bk}
//! F_b[argmin_{bk}, :]`: 2·n rows gathered per output row instead of the dense
//! `(D × n·cells)·(n·cells × D)` product, and no mask is ever materialised.

use super::linalg::{gemm_into, Real};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Where each channel's extremes were and whether they pass the ReLU: all the backward pass needs.
#[derive(Debug, Clone, Default)]
pub struct PoolTape {
    /// Images n.
    pub n: usize,
    /// Cells per image.
    pub cells: usize,
    /// Rotated channels m (rows of U).
    pub dim: usize,
    /// Feature channels D (columns of U and of each pixel row).
    pub features: usize,
    /// Cell of the maximum of J_k for image b, at `b·m + k`.
    pub argmax: Vec<u32>,
    /// Cell of the minimum.
    pub argmin: Vec<u32>,
    /// Whether the maximum is positive (the ReLU passes gradient).
    pub pos_active: Vec<bool>,
    /// Whether the minimum is negative.
    pub neg_active: Vec<bool>,
}

/// Pixel rows per GEMM: large enough for gemm to run at full speed, small enough that the rotated
/// chunk stays in cache while it is pooled.
const ROWS_PER_CHUNK: usize = 1024;

/// Forward pass: pooled values v [n, m] of the m rows of `u` ([m, D]) and the tape.
pub fn rotate_pool<T: Real>(
    u: &[T],
    pixels: &[T],
    n: usize,
    cells: usize,
    features: usize,
) -> (Vec<T>, PoolTape) {
    let f = features;
    let d = u.len() / f.max(1);
    let mut tape = PoolTape {
        n,
        cells,
        dim: d,
        features: f,
        argmax: vec![0; n * d],
        argmin: vec![0; n * d],
        pos_active: vec![false; n * d],
        neg_active: vec![false; n * d],
    };
    let mut v = vec![T::zero(); n * d];
    let per_chunk = (ROWS_PER_CHUNK / cells.max(1)).max(1);
    // U = I when the caller rotated the pixels already (the dynamic trivialization right after
    // a rebase): pool them as they are instead of multiplying by I.
    let identity = d == f && is_identity(d, u);
    let mut j = vec![T::zero(); if identity { 0 } else { per_chunk * cells * d }];
    for first in (0..n).step_by(per_chunk) {
        let count = per_chunk.min(n - first);
        let rows = count * cells;
        let chunk = &pixels[first * cells * f..][..rows * f];
        let rotated: &[T] = if identity {
            chunk
        } else {
            gemm_into(
                rows,
                d,
                f,
                chunk,
                false,
                u,
                true,
                &mut j[..rows * d],
                false,
                T::one(),
            );
            &j[..rows * d]
        };
        for b in 0..count {
            let img = first + b;
            let maps = &rotated[b * cells * d..(b + 1) * cells * d];
            let (mut hi, mut lo) = (maps[..d].to_vec(), maps[..d].to_vec());
            let am = &mut tape.argmax[img * d..(img + 1) * d];
            let an = &mut tape.argmin[img * d..(img + 1) * d];
            for (r, row) in maps.chunks_exact(d).enumerate().skip(1) {
                for k in 0..d {
                    // Strict comparisons keep the first extreme, as `params::sparse_pool` does.
                    if row[k] > hi[k] {
                        hi[k] = row[k];
                        am[k] = r as u32;
                    }
                    if row[k] < lo[k] {
                        lo[k] = row[k];
                        an[k] = r as u32;
                    }
                }
            }
            for k in 0..d {
                let i = img * d + k;
                tape.pos_active[i] = hi[k] > T::zero();
                tape.neg_active[i] = lo[k] < T::zero();
                v[i] = hi[k].max(T::zero()) + lo[k].min(T::zero());
            }
        }
    }
    (v, tape)
}

/// Whether the d×d matrix `u` is exactly the identity.
fn is_identity<T: Real>(d: usize, u: &[T]) -> bool {
    u.chunks_exact(d).enumerate().all(|(i, row)| {
        row.iter()
            .enumerate()
            .all(|(j, &x)| x == if i == j { T::one() } else { T::zero() })
    })
}

/// Images whose selected pixel rows are gathered together: their rows stay in cache while every
/// output row is updated.
const IMAGES_PER_BLOCK: usize = 8;
/// Output rows per parallel task.
const ROWS_PER_TASK: usize = 8;

/// Backward pass: ∂L/∂U [m, D] from ∂L/∂v [n, m]. Each output row sums its contributions in a
/// fixed order, so the result does not depend on the number of threads.
pub fn rotate_pool_backward<T: Real>(tape: &PoolTape, pixels: &[T], grad_v: &[T]) -> Vec<T> {
    let (d, f, cells) = (tape.dim, tape.features, tape.cells);
    let mut grad_u = vec![T::zero(); d * f];
    for first in (0..tape.n).step_by(IMAGES_PER_BLOCK) {
        let last = (first + IMAGES_PER_BLOCK).min(tape.n);
        grad_u
            .par_chunks_mut(f * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, rows)| {
                for (kk, out) in rows.chunks_exact_mut(f).enumerate() {
                    let k = task * ROWS_PER_TASK + kk;
                    for b in first..last {
                        let i = b * d + k;
                        let g = grad_v[i];
                        if g == T::zero() {
                            continue;
                        }
                        for (active, cell) in [
                            (tape.pos_active[i], tape.argmax[i]),
                            (tape.neg_active[i], tape.argmin[i]),
                        ] {
                            if active {
                                let row = &pixels[(b * cells + cell as usize) * f..][..f];
                                for (o, &x) in out.iter_mut().zip(row) {
                                    *o = *o + g * x;
                                }
                            }
                        }
                    }
                }
            });
    }
    grad_u
}

/// The candle op `(U [m, D], pixels [n·cells, D]) → v [n, m]`. Pixels receive no gradient (the
/// backbone is frozen).
pub struct RotatePool {
    n: usize,
    cells: usize,
    tape: Mutex<PoolTape>,
}

impl RotatePool {
    /// An op for a batch of `n` images of `cells` pixels each.
    pub fn new(n: usize, cells: usize) -> Self {
        RotatePool {
            n,
            cells,
            tape: Mutex::new(PoolTape::default()),
        }
    }
}

fn contiguous<'a, T: candle_core::WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<T>()?[start..end]),
        None => candle_core::bail!("rotate-pool needs contiguous inputs"),
    }
}

/// Runs `f` on the contiguous f32 or f64 contents of a tensor.
pub(crate) fn with_slice<R>(
    t: &Tensor,
    f32_fn: impl FnOnce(&[f32]) -> R,
    f64_fn: impl FnOnce(&[f64]) -> R,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("the InfoDisent head runs on the CPU")
    };
    match cpu {
        CpuStorage::F32(_) => Ok(f32_fn(contiguous::<f32>(cpu, layout)?)),
        CpuStorage::F64(_) => Ok(f64_fn(contiguous::<f64>(cpu, layout)?)),
        _ => candle_core::bail!("the InfoDisent head computes in f32 or f64"),
    }
}

impl CustomOp2 for RotatePool {
    fn name(&self) -> &'static str {
        "rotate-sparse-pool"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (d, f) = match l1.dims() {
            &[d, f] => (d, f),
            other => candle_core::bail!("rotate-pool: U must be a matrix, got {other:?}"),
        };
        if l2.dims() != [self.n * self.cells, f] {
            candle_core::bail!(
                "rotate-pool: U {:?} and pixels {:?} do not fit {} images of {} cells",
                l1.dims(),
                l2.dims(),
                self.n,
                self.cells
            );
        }
        let (storage, tape) = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                let (v, tape) = rotate_pool(
                    contiguous::<f32>(s1, l1)?,
                    contiguous::<f32>(s2, l2)?,
                    self.n,
                    self.cells,
                    f,
                );
                (CpuStorage::F32(v), tape)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                let (v, tape) = rotate_pool(
                    contiguous::<f64>(s1, l1)?,
                    contiguous::<f64>(s2, l2)?,
                    self.n,
                    self.cells,
                    f,
                );
                (CpuStorage::F64(v), tape)
            }
            _ => candle_core::bail!("rotate-pool: U and pixels must both be f32 or both f64"),
        };
        *self
            .tape
            .lock()
            .map_err(|_| candle_core::Error::Msg("rotate-pool tape poisoned".into()))? = tape;
        Ok((storage, Shape::from((self.n, d))))
    }

    fn bwd(
        &self,
        u: &Tensor,
        pixels: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let tape = self
            .tape
            .lock()
            .map_err(|_| candle_core::Error::Msg("rotate-pool tape poisoned".into()))?;
        let (d, f) = (tape.dim, tape.features);
        let grad_v = grad_res.contiguous()?;
        let grad_u = match grad_v.dtype() {
            candle_core::DType::F32 => {
                let g = grad_v.flatten_all()?.to_vec1::<f32>()?;
                let gu = with_slice(
                    pixels,
                    |p| rotate_pool_backward(&tape, p, &g),
                    |_| Vec::new(),
                )?;
                Tensor::from_vec(gu, (d, f), u.device())?
            }
            _ => {
                let g = grad_v.flatten_all()?.to_vec1::<f64>()?;
                let gu = with_slice(
                    pixels,
                    |_| Vec::new(),
                    |p| rotate_pool_backward(&tape, p, &g),
                )?;
                Tensor::from_vec(gu, (d, f), u.device())?
            }
        };
        Ok((Some(grad_u), None))
    }
}
