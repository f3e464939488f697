//! Which part of the work a cluster task does, read from its scheduler's environment: a Slurm
//! job array or a Kubernetes Indexed Job.

use crate::cache::Part;
use crate::error::{Error, Result};

/// A part and where it came from, in words (what `--part auto` prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFromEnv {
    /// The part.
    pub part: Part,
    /// The variables it was read from, e.g. `Slurm array task 2 of 0-3`.
    pub source: String,
}

/// The part `--part` names: `I/N`, or `auto` from the environment ([`part_from_env`]);
/// `parts` (`--parts`) must agree with an explicit `I/N`. `None` when no part is asked for.
pub fn resolve_part(spec: Option<&str>, parts: Option<usize>) -> Result<Option<PartFromEnv>> {
    let Some(spec) = spec else {
        return match parts {
            Some(n) => Err(Error::Config(format!(
                "--parts {n} needs --part auto or --part I/{n}"
            ))),
            None => Ok(None),
        };
    };
    if spec.trim() == "auto" {
        return part_from_env(parts).map(Some);
    }
    let part = Part::parse(spec)?;
    if let Some(n) = parts.filter(|&n| n != part.count) {
        return Err(Error::Config(format!("--part {spec} but --parts {n}")));
    }
    Ok(Some(PartFromEnv {
        part,
        source: format!("--part {spec}"),
    }))
}

/// Reads the part from this process's environment (see [`part_from_vars`]).
pub fn part_from_env(parts: Option<usize>) -> Result<PartFromEnv> {
    part_from_vars(|name| std::env::var(name).ok(), parts)
}

/// The part a task is: Slurm's `SLURM_ARRAY_TASK_ID` less `SLURM_ARRAY_TASK_MIN` of
/// `SLURM_ARRAY_TASK_COUNT` (an array of consecutive indices; stepped arrays and lists with
/// gaps are refused), else a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` of `parts`.
/// `parts`, when given with Slurm, must equal the array's size.
pub fn part_from_vars(
    var: impl Fn(&str) -> Option<String>,
    parts: Option<usize>,
) -> Result<PartFromEnv> {
    let number = |name: &str| -> Result<Option<usize>> {
        var(name)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| Error::Config(format!("{name}={v}: not a non-negative integer")))
            })
            .transpose()
    };
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        let missing = |name: &str| {
            Error::Config(format!(
                "SLURM_ARRAY_TASK_ID is set but {name} is not: is this Slurm older than 18.08?"
            ))
        };
        let min = number("SLURM_ARRAY_TASK_MIN")?.ok_or_else(|| missing("SLURM_ARRAY_TASK_MIN"))?;
        let count =
            number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| missing("SLURM_ARRAY_TASK_COUNT"))?;
        let max = number("SLURM_ARRAY_TASK_MAX")?.unwrap_or(min + count.saturating_sub(1));
        let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1);
        if step != 1 || max + 1 - min != count {
            return Err(Error::Config(format!(
                "the Slurm array {min}-{max} (step {step}, {count} tasks) is not a run of consecutive indices: submit it as --array={min}-{}",
                min + count - 1
            )));
        }
        if let Some(n) = parts.filter(|&n| n != count) {
            return Err(Error::Config(format!(
                "--parts {n} but the Slurm array has {count} tasks"
            )));
        }
        return Ok(PartFromEnv {
            part: Part::new(id - min, count)?,
            source: format!("Slurm array task {id} of {min}-{max}"),
        });
    }
    if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let count = parts.ok_or_else(|| {
            Error::Config("JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): pass --parts with the job's completions".into())
        })?;
        return Ok(PartFromEnv {
            part: Part::new(index, count)?,
            source: format!("Kubernetes job completion index {index} of {count}"),
        });
    }
    Err(Error::Config(
        "--part auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; pass --part I/N".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)], parts: Option<usize>) -> Result<PartFromEnv> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        part_from_vars(|k| vars.get(k).cloned(), parts)
    }

    #[test]
    fn slurm_arrays_and_kubernetes_indices_name_their_part() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ];
        assert_eq!(read(&slurm, None).unwrap().part, Part::new(2, 4).unwrap());
        assert!(read(&slurm, Some(3)).is_err());
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "6"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ];
        assert!(read(&stepped, None)
            .unwrap_err()
            .to_string()
            .contains("--array=0-3"));
        let k8s = [("JOB_COMPLETION_INDEX", "3")];
        assert_eq!(read(&k8s, Some(8)).unwrap().part, Part::new(3, 8).unwrap());
        assert!(read(&k8s, None).is_err() && read(&k8s, Some(3)).is_err());
        assert!(read(&[], Some(4)).is_err());
    }
}
