//! The documentation a newcomer reads first cannot drift: the guide's CLI reference is what clap
//! generates, and the README's first screen holds the pitch, a picture and the two commands.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn cli_reference_is_the_generated_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_infodisent"))
        .arg("markdown-help")
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("UTF-8 Markdown");
    let path = repo().join("docs/book/src/cli.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if generated != committed {
        let line = generated
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| generated.lines().count().min(committed.lines().count()));
        panic!(
            "{} differs from the CLI's --help (first at line {}); regenerate it with\n  \
             cargo run -q -p infodisent-cli -- markdown-help > docs/book/src/cli.md",
            path.display(),
            line + 1
        );
    }
}

/// Words that mean something only inside the project: rustdoc link markup, which clap prints
/// as is, and references to the internal method notes or to issues.
fn internal_markup(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let link = line
            .find("[`")
            .is_some_and(|a| line[a..].contains("`]") && !line[a..].contains("`](#"));
        let reference = line.contains("METHOD.md")
            || line
                .split("issue ")
                .skip(1)
                .any(|t| t.starts_with(|c: char| c.is_ascii_digit()));
        if link || reference {
            found.push(format!("line {}: {line}", i + 1));
        }
    }
    found
}

#[test]
fn help_text_has_no_rustdoc_links_or_internal_references() {
    let out = Command::new(env!("CARGO_BIN_EXE_infodisent"))
        .arg("markdown-help")
        .output()
        .expect("the binary runs");
    let found = internal_markup(&String::from_utf8_lossy(&out.stdout));
    assert!(
        found.is_empty(),
        "--help shows markup meant for rustdoc:\n{}",
        found.join("\n")
    );
}

/// The paragraphs of some Markdown lines outside fenced code: (first line, text).
fn paragraphs(lines: &[&str]) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut fenced = false;
    let mut open = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            fenced = !fenced;
            open = false;
            continue;
        }
        let prose = !fenced
            && !t.is_empty()
            && !["#", "![", "|", "- ", "* ", "+ ", "<"]
                .iter()
                .any(|p| t.starts_with(p));
        match (prose, open) {
            (true, true) => {
                let last = out.last_mut().expect("an open paragraph");
                last.1.push(' ');
                last.1.push_str(t);
            }
            (true, false) => out.push((i, t.to_owned())),
            _ => {}
        }
        open = prose;
    }
    out
}

#[test]
fn readme_front_page_shows_pitch_picture_and_commands() {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() <= 150,
        "README.md has {} lines: the front page stays short, depth goes into docs/book",
        lines.len()
    );
    let first = &lines[..lines.len().min(40)];

    let pitch = paragraphs(first)
        .into_iter()
        .find(|(_, p)| p.split_whitespace().count() >= 40);
    let (_, pitch) = pitch.expect("a paragraph of 40+ words (the pitch) in the first 40 lines");
    for word in ["classifier", "ONNX", "prototyp"] {
        assert!(pitch.contains(word), "the pitch lacks `{word}`: {pitch}");
    }

    let picture = first
        .iter()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("![")?;
            let (alt, target) = rest.split_once("](")?;
            Some((alt.to_owned(), target.trim_end_matches(')').to_owned()))
        })
        .expect("a picture of an explanation in the first 40 lines");
    assert!(
        picture.0.split_whitespace().count() >= 8,
        "the picture's alt text should say what it shows: {:?}",
        picture.0
    );
    assert!(
        repo().join(&picture.1).is_file(),
        "the picture {} is missing",
        picture.1
    );

    for command in ["scripts/demo.sh", "scripts/test.sh"] {
        assert!(
            first.iter().any(|l| l.trim_start().starts_with(command)),
            "the first 40 lines lack a line running `{command}`"
        );
    }
}

#[test]
fn the_kubernetes_manifest_asks_for_as_many_parts_as_completions() {
    let manifest = std::fs::read_to_string(repo().join("docs/cluster/extract-job.yaml")).unwrap();
    let value = |key: &str| -> String {
        let line = manifest
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("docs/cluster/extract-job.yaml has no `{key}`"));
        line.trim_start()[key.len()..].trim().to_owned()
    };
    assert_eq!(value("completionMode:"), "Indexed");
    assert_eq!(value("- --parts="), value("completions:"));
    assert_eq!(value("- --part="), "auto");
}
