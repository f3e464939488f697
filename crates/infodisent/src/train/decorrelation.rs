//! The decorrelation penalty (`TrainConfig::decorrelation`): the mean squared correlation,
//! over a batch, between the pooled values of a head's channels. That is the pooled reading of
//! the RV coefficient ([`crate::rv`]) on the batch, so the penalty trains against
//! exactly what that reading measures; it is differentiable through the pooling to U.

use crate::error::Result;
use candle_core::Tensor;

/// Keeps a channel that is constant over the batch (dead after a ReLU) from dividing by zero;
/// its correlations are then 0.
const EPS: f64 = 1e-6;

/// Mean over pairs of distinct columns of `v` (`[n, m]`) of their squared correlation over the
/// `n` rows; 0 for a single column.
pub fn penalty(v: &Tensor) -> Result<Tensor> {
    let (_, m) = v.dims2()?;
    let centred = v.broadcast_sub(&v.mean_keepdim(0)?)?;
    let norm = (centred.sqr()?.sum_keepdim(0)? + EPS)?.sqrt()?;
    let z = centred.broadcast_div(&norm)?;
    let corr = z.t()?.matmul(&z)?;
    // The diagonal holds each column's own ‖z‖² (1, or 0 for a constant column).
    let diagonal = z.sqr()?.sum(0)?.sqr()?.sum_all()?;
    let pairs = (m * m.saturating_sub(1)).max(1) as f64;
    Ok(((corr.sqr()?.sum_all()? - diagonal)? / pairs)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    fn column_major(columns: &[Vec<f32>]) -> Tensor {
        let n = columns[0].len();
        let data: Vec<f32> = (0..n)
            .flat_map(|i| columns.iter().map(move |c| c[i]))
            .collect();
        Tensor::from_vec(data, (n, columns.len()), &Device::Cpu).unwrap()
    }

    #[test]
    fn it_is_the_mean_squared_correlation_of_the_columns() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let x: Vec<f32> = (0..400).map(|_| rng.random()).collect();
        let y: Vec<f32> = (0..400).map(|_| rng.random()).collect();
        let same = column_major(&[x.clone(), x.iter().map(|v| 2.0 * v - 1.0).collect()]);
        let p = penalty(&same).unwrap().to_scalar::<f32>().unwrap();
        assert!((p - 1.0).abs() < 1e-4, "{p}");
        let unrelated = column_major(&[x.clone(), y]);
        let p = penalty(&unrelated).unwrap().to_scalar::<f32>().unwrap();
        assert!(p < 0.02, "{p}");
        // A constant column correlates with nothing; the pair (x, −x) with r² = 1 is 1 of the
        // 3 pairs.
        let with_dead = column_major(&[x.clone(), vec![0.5; 400], x.iter().map(|v| -v).collect()]);
        let p = penalty(&with_dead).unwrap().to_scalar::<f32>().unwrap();
        assert!((p - 1.0 / 3.0).abs() < 1e-4, "{p}");
    }

    #[test]
    fn its_gradient_pulls_correlated_columns_apart() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let x: Vec<f32> = (0..64).map(|_| rng.random()).collect();
        let noisy: Vec<f32> = x.iter().map(|v| v + 0.3 * rng.random::<f32>()).collect();
        let v = Var::from_tensor(&column_major(&[x, noisy])).unwrap();
        let before = penalty(v.as_tensor()).unwrap();
        let grads = before.backward().unwrap();
        let g = grads.get(v.as_tensor()).unwrap();
        let stepped = (v.as_tensor() - (g * 0.5).unwrap()).unwrap();
        let after = penalty(&stepped).unwrap().to_scalar::<f32>().unwrap();
        assert!(after < before.to_scalar::<f32>().unwrap() - 1e-3, "{after}");
    }
}
