//! The rule that ties a folder of class folders to a model's outputs: the sorted folder names
//! are classes 0, 1, 2, ... and must follow the model's output order wherever the labels are
//! compared with the model's own decision (the original classifier's accuracy). Folders named
//! after the model's classes but sorted differently (`goldfish`, `tench` instead of `tench`,
//! `goldfish`) break it silently, so they get a warning.

/// A name as people spell it in folder names: lower case, `_`/`-` as spaces.
fn normalised(name: &str) -> String {
    name.trim()
        .to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A warning when the dataset's classes (sorted folder names) are the model's classes by name
/// but in another order than its outputs; `None` when they follow it, or are not its classes.
pub fn order_warning(folders: &[String], model_classes: &[String]) -> Option<String> {
    if folders.len() != model_classes.len() || folders.is_empty() {
        return None;
    }
    let index: std::collections::HashMap<String, usize> = model_classes
        .iter()
        .enumerate()
        .rev() // the first of two equal names wins
        .map(|(i, n)| (normalised(n), i))
        .collect();
    let matched: Vec<Option<usize>> = folders
        .iter()
        .map(|f| index.get(&normalised(f)).copied())
        .collect();
    let named = matched.iter().flatten().count();
    // Most folders must carry the model's names: a few coincidences prove nothing.
    if named * 10 < folders.len() * 9 {
        return None;
    }
    let (i, k) = matched
        .iter()
        .enumerate()
        .find_map(|(i, m)| m.filter(|&k| k != i).map(|k| (i, k)))?;
    Some(format!(
        "the class folders are named after the model's classes but sort in another order: \
         folder `{}` is dataset class {i} and the model's class {k} (`{}`). The original \
         classifier's accuracy reads folder i as output i; prefix the folders with the output \
         index (`{k:03}_{}`) so that sorting follows the model",
        folders[i], model_classes[k], folders[i]
    ))
}

#[cfg(test)]
mod tests {
    use super::order_warning;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn folders_in_the_model_order_pass_and_sorted_names_in_another_order_warn() {
        let model = names(&["tench", "goldfish", "great white shark"]);
        assert_eq!(
            order_warning(&names(&["000_tench", "001_goldfish", "002_shark"]), &model),
            None
        );
        assert_eq!(
            order_warning(&names(&["tench", "goldfish", "great_white_shark"]), &model),
            None
        );
        let sorted = names(&["goldfish", "great_white_shark", "tench"]);
        let warning = order_warning(&sorted, &model).expect("a warning");
        assert!(
            warning.contains("folder `goldfish` is dataset class 0 and the model's class 1"),
            "{warning}"
        );
        assert!(warning.contains("001_goldfish"), "{warning}");
    }

    #[test]
    fn other_datasets_and_subsets_are_left_alone() {
        let model = names(&["tench", "goldfish", "great white shark"]);
        assert_eq!(
            order_warning(&names(&["cat", "dog", "tench"]), &model),
            None
        );
        assert_eq!(order_warning(&names(&["goldfish", "tench"]), &model), None);
    }
}
