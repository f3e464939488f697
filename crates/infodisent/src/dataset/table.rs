//! Whitespace-separated annotation files (CUB's `images.txt`, ImageNet's ground truth): every
//! line split into fields, every error naming the file and the line.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The non-blank lines of a text file, each split on whitespace into at most `fields` fields
/// (the last keeps any further spaces, as in CUB's part names).
pub struct Table {
    path: PathBuf,
    rows: Vec<(usize, Vec<String>)>,
}

/// One line of a [`Table`]: its fields and where it came from, for messages.
pub struct Row<'a> {
    path: &'a Path,
    line: usize,
    fields: &'a [String],
}

impl Table {
    /// Reads `path`, requiring exactly `fields` fields on every non-blank line.
    pub fn read(path: &Path, fields: usize) -> Result<Table> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<String> = line
                .splitn(fields, char::is_whitespace)
                .map(|f| f.trim().to_owned())
                .collect();
            if parts.len() != fields || parts.iter().any(String::is_empty) {
                return Err(Error::input(
                    path,
                    format!(
                        "line {}: expected {fields} fields separated by spaces, found `{line}`",
                        i + 1
                    ),
                ));
            }
            rows.push((i + 1, parts));
        }
        Ok(Table {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// The rows in file order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|(line, fields)| Row {
            path: &self.path,
            line: *line,
            fields,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the file had no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl Row<'_> {
    /// Field `i` as text.
    pub fn text(&self, i: usize) -> &str {
        &self.fields[i]
    }

    /// Field `i` parsed as `T`, or an error naming the file, line and field.
    pub fn get<T: FromStr>(&self, i: usize, what: &str) -> Result<T> {
        self.fields[i]
            .parse()
            .map_err(|_| self.error(format!("{what} `{}` is not a valid number", self.fields[i])))
    }

    /// The line's number in its file (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    /// An error about this line.
    pub fn error(&self, msg: impl std::fmt::Display) -> Error {
        line_error(self.path, self.line, msg)
    }
}

/// An error about line `line` (1-based) of the text file `path`.
pub(crate) fn line_error(path: &Path, line: usize, msg: impl std::fmt::Display) -> Error {
    Error::input(path, format!("line {line}: {msg}"))
}
