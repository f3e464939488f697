//! Which images of the training split train and which validate: optionally the first N of
//! each class, then a seeded hold-out stratified by class, so every class is validated in
//! proportion and none loses all of its images.

/// The training split's items divided between training and validation (indices into the split).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdout {
    /// Items trained on, in split order.
    pub train: Vec<usize>,
    /// Items held out for validation, in split order.
    pub val: Vec<usize>,
}

/// Divides items labelled `labels` (one per item of the split): at most `limit_per_class` per
/// class (the first ones), then `fraction` of each class held out; `rank(i)` orders a class's
/// items for the draw (a seeded hash, so the draw does not follow the folder's order).
/// Rounding follows the running total over classes, so the whole hold-out is `fraction` of the
/// items to within one image, and a class keeps at least one image to train on.
pub fn divide(
    labels: &[i64],
    limit_per_class: Option<usize>,
    fraction: f64,
    rank: impl Fn(usize) -> u64,
) -> Holdout {
    let mut by_class: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (i, &label) in labels.iter().enumerate() {
        let class = by_class.entry(label).or_default();
        if limit_per_class.is_none_or(|k| class.len() < k) {
            class.push(i);
        }
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    let mut seen = 0usize;
    for items in by_class.values_mut() {
        let before = (fraction * seen as f64).round() as usize;
        seen += items.len();
        let after = (fraction * seen as f64).round() as usize;
        let held = (after - before).min(items.len() - 1);
        items.sort_by_key(|&i| (rank(i), i));
        val.extend_from_slice(&items[..held]);
        train.extend_from_slice(&items[held..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    Holdout { train, val }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_is_held_out_in_proportion() {
        // Class 0: 100 items, class 1: 30, class 2: 1 (it must keep its only image).
        let labels: Vec<i64> = (0..131)
            .map(|i| (i >= 100) as i64 + (i >= 130) as i64)
            .collect();
        let split = divide(&labels, None, 0.1, |i| (i as u64).wrapping_mul(0x9E37_79B9));
        let held = |c: i64| split.val.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!((held(0), held(1), held(2)), (10, 3, 0));
        assert_eq!(split.train.len() + split.val.len(), 131);
        let mut all: Vec<usize> = split.train.iter().chain(&split.val).copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..131).collect::<Vec<_>>(),
            "a partition of the items"
        );
    }

    #[test]
    fn the_limit_keeps_the_first_images_of_each_class() {
        let labels: Vec<i64> = (0..40).map(|i| i % 2).collect();
        let split = divide(&labels, Some(5), 0.0, |i| i as u64);
        assert_eq!(split.train, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(split.val.is_empty());
    }
}
