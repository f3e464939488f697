//! MATLAB MAT files (level 5: versions 6 and 7, compressed or not) as the annotation files of
//! Stanford Cars, Stanford Dogs and the ImageNet devkit use them, read through `matrw`. Every
//! error names the file and the element in MATLAB's notation, with its 1-based index:
//! `annotations(3).bbox_x1`, `file_list{5}`, `labels(7)`.

use crate::error::{Error, Result};
use matrw::{MatFile, MatVariable, MatlabType, MatrwError, Structure};
use std::path::{Path, PathBuf};

/// A loaded MAT file and its path, for messages.
#[derive(Debug)]
pub(crate) struct Mat {
    path: PathBuf,
    file: MatFile,
}

/// One element of a struct array: its fields, and where it came from for messages.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    path: &'a Path,
    var: &'a str,
    index: usize,
    fields: &'a Structure,
}

impl Mat {
    /// Reads the MAT file at `path`.
    pub fn load(path: &Path) -> Result<Mat> {
        let name = path
            .to_str()
            .ok_or_else(|| Error::input(path, "the MAT reader needs a UTF-8 path"))?;
        // matrw 0.1 panics on some malformed files where it should return an error (an
        // `unwrap` on char data that is not UTF-8, `unimplemented!` on a variable cut off by
        // truncation); a broken annotation file must be reported, not abort the program.
        // What is read afterwards is taken from matrw's public enums directly, never through
        // its accessors that panic on a type mismatch (`to_f64` on integer data, `dim`), so
        // loading is the only call that needs the guard.
        match std::panic::catch_unwind(|| matrw::load_matfile(name)) {
            Ok(Ok(file)) => Ok(Mat {
                path: path.to_path_buf(),
                file,
            }),
            Ok(Err(MatrwError::IoError(e))) => Err(Error::io(path, e)),
            Ok(Err(e)) => Err(Error::input(path, format!("not a readable MAT file: {e}"))),
            Err(_) => Err(Error::input(
                path,
                "not a readable MAT file: it is truncated or malformed",
            )),
        }
    }

    /// An error about element `index` (0-based) of variable `var`, written `var(index + 1)`.
    pub fn error(&self, var: &str, index: usize, msg: impl std::fmt::Display) -> Error {
        Error::input(&self.path, format!("{var}({}): {msg}", index + 1))
    }

    fn var(&self, name: &str) -> Result<&MatVariable> {
        match &self.file[name] {
            MatVariable::Null => Err(Error::input(
                &self.path,
                format!("has no variable `{name}`"),
            )),
            var => Ok(var),
        }
    }

    /// The elements of the struct array `name` in MATLAB's order (a single struct is one).
    pub fn structs<'a>(&'a self, name: &'a str) -> Result<Vec<Record<'a>>> {
        let elements = match self.var(name)? {
            MatVariable::StructureArray(array) => array.value.iter().collect(),
            single @ MatVariable::Structure(_) => vec![single],
            other => {
                let msg = format!("`{name}` is {}, not a struct array", kind(other));
                return Err(Error::input(&self.path, msg));
            }
        };
        elements
            .into_iter()
            .enumerate()
            .map(|(index, element)| match element {
                MatVariable::Structure(fields) => Ok(Record {
                    path: &self.path,
                    var: name,
                    index,
                    fields,
                }),
                other => Err(self.error(name, index, format!("is {}, not a struct", kind(other)))),
            })
            .collect()
    }

    /// The cell array of strings `name`, in MATLAB's order.
    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        let cells = match self.var(name)? {
            MatVariable::CellArray(cells) => cells,
            other => {
                let msg = format!("`{name}` is {}, not a cell array", kind(other));
                return Err(Error::input(&self.path, msg));
            }
        };
        cells
            .value
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                text(cell)
                    .map_err(|msg| Error::input(&self.path, format!("{name}{{{}}}: {msg}", i + 1)))
            })
            .collect()
    }

    /// The numeric array `name` as numbers, in MATLAB's order.
    pub fn numbers(&self, name: &str) -> Result<Vec<f64>> {
        numbers(self.var(name)?).map_err(|msg| Error::input(&self.path, format!("`{name}`: {msg}")))
    }
}

impl Record<'_> {
    fn field(&self, field: &str) -> Result<&MatVariable> {
        self.fields
            .get(field)
            .ok_or_else(|| self.error(field, "no such field"))
    }

    /// Field `field` as a string.
    pub fn string(&self, field: &str) -> Result<String> {
        text(self.field(field)?).map_err(|msg| self.error(field, msg))
    }

    /// Field `field` as one number.
    pub fn number(&self, field: &str) -> Result<f64> {
        match numbers(self.field(field)?).map_err(|msg| self.error(field, msg))?[..] {
            [value] => Ok(value),
            ref values => {
                Err(self.error(field, format!("holds {} numbers, not one", values.len())))
            }
        }
    }

    /// Field `field` as a whole number that is not negative (a 1-based id, a count, a flag).
    pub fn whole(&self, field: &str) -> Result<usize> {
        let value = self.number(field)?;
        whole(value).ok_or_else(|| self.error(field, format!("{value} is not a whole number ≥ 0")))
    }

    /// An error about field `field` of this element.
    pub fn error(&self, field: &str, msg: impl std::fmt::Display) -> Error {
        Error::input(
            self.path,
            format!("{}({}).{field}: {msg}", self.var, self.index + 1),
        )
    }
}

/// `value` as a `usize` when it is a whole number that is not negative.
pub(crate) fn whole(value: f64) -> Option<usize> {
    (value >= 0.0 && value.fract() == 0.0 && value <= u32::MAX as f64).then_some(value as usize)
}

/// What kind of MATLAB value `var` is, for messages.
fn kind(var: &MatVariable) -> &'static str {
    match var {
        MatVariable::NumericArray(a)
            if matches!(a.value, MatlabType::UTF8(_) | MatlabType::UTF16(_)) =>
        {
            "text"
        }
        MatVariable::NumericArray(_) => "a numeric array",
        MatVariable::SparseArray(_) => "a sparse array",
        MatVariable::StructureArray(_) | MatVariable::Structure(_) => "a struct",
        MatVariable::CellArray(_) => "a cell array",
        MatVariable::Null | MatVariable::Compressed(_) | MatVariable::Unsupported => {
            "an unsupported value"
        }
    }
}

/// A MATLAB char row (or column) as a string; an empty array is the empty string.
fn text(var: &MatVariable) -> std::result::Result<String, String> {
    let MatVariable::NumericArray(array) = var else {
        return Err(format!("is {}, not text", kind(var)));
    };
    match &array.value {
        MatlabType::UTF8(chars) | MatlabType::UTF16(chars) => {
            if array.dim.iter().filter(|&&d| d > 1).count() > 1 {
                return Err(format!("is a {:?} char matrix, not one string", array.dim));
            }
            Ok(chars.iter().collect())
        }
        // MATLAB writes '' as an empty double array.
        _ if array.dim.contains(&0) => Ok(String::new()),
        _ => Err("is a numeric array, not text".to_owned()),
    }
}

/// The real parts of a numeric array as `f64`, whatever integer or float type stores them.
fn numbers(var: &MatVariable) -> std::result::Result<Vec<f64>, String> {
    let MatVariable::NumericArray(array) = var else {
        return Err(format!("is {}, not a number", kind(var)));
    };
    Ok(match &array.value {
        MatlabType::U8(v) => v.iter().map(|&x| x.into()).collect(),
        MatlabType::I8(v) => v.iter().map(|&x| x.into()).collect(),
        MatlabType::U16(v) => v.iter().map(|&x| x.into()).collect(),
        MatlabType::I16(v) => v.iter().map(|&x| x.into()).collect(),
        MatlabType::U32(v) => v.iter().map(|&x| x.into()).collect(),
        MatlabType::I32(v) => v.iter().map(|&x| x.into()).collect(),
        MatlabType::U64(v) => v.iter().map(|&x| x as f64).collect(),
        MatlabType::I64(v) => v.iter().map(|&x| x as f64).collect(),
        MatlabType::F32(v) => v.iter().map(|&x| x.into()).collect(),
        MatlabType::F64(v) => v.clone(),
        MatlabType::BOOL(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        MatlabType::UTF8(_) | MatlabType::UTF16(_) => {
            return Err("is text, not a number".to_owned())
        }
    })
}

/// Writing MAT files: the generated layouts' annotation files and the readers' test fixtures.
pub(crate) mod write {
    use crate::error::{Error, Result};
    use matrw::{MatFile, MatVariable};
    use std::path::Path;

    /// A 1×n cell array of strings.
    pub fn strings<S: AsRef<str>>(items: &[S]) -> MatVariable {
        let cells: Vec<MatVariable> = items
            .iter()
            .map(|s| MatVariable::from(s.as_ref()))
            .collect();
        MatVariable::from(cells)
    }

    /// A 1×n struct array of `items`, each made with `matrw::matvar!({ ... })`.
    pub fn structs(items: Vec<MatVariable>) -> MatVariable {
        MatVariable::from(items)
    }

    /// Writes `vars` to `path` as a version 7 MAT file, compressed or not (the real sets have
    /// both), through a temporary file and a rename.
    pub fn save(path: &Path, vars: Vec<(&str, MatVariable)>, compress: bool) -> Result<()> {
        let mut file = MatFile::new();
        for (name, var) in vars {
            file.insert(name, var);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = path.with_extension("mat.partial");
        let name = tmp
            .to_str()
            .ok_or_else(|| Error::input(&tmp, "MAT files are written to UTF-8 paths only"))?;
        matrw::save_matfile_v7(name, file, compress)
            .map_err(|e| Error::input(path, format!("cannot write this MAT file: {e:?}")))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matrw::matvar;

    fn fixture(dir: &Path, compress: bool) -> PathBuf {
        let path = dir.join("fixture.mat");
        let annotations = write::structs(vec![
            matvar!({ fname: "a.jpg", class: 3.0, small: 7_u8 }),
            matvar!({ fname: "b.jpg", class: 1.5, small: 9_u8 }),
        ]);
        let vars = vec![
            ("annotations", annotations),
            ("names", write::strings(&["Audi", "BMW"])),
            ("labels", matvar!([1.0, 2.0, 3.0])),
        ];
        write::save(&path, vars, compress).unwrap();
        path
    }

    #[test]
    fn reads_struct_fields_cells_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        for compress in [false, true] {
            let mat = Mat::load(&fixture(dir.path(), compress)).unwrap();
            let records = mat.structs("annotations").unwrap();
            assert_eq!(records.len(), 2);
            assert_eq!(records[0].string("fname").unwrap(), "a.jpg");
            assert_eq!(records[0].whole("class").unwrap(), 3);
            assert_eq!(records[1].number("class").unwrap(), 1.5);
            // Integer classes (uint8 here) read as numbers too.
            assert_eq!(records[1].whole("small").unwrap(), 9);
            assert_eq!(mat.strings("names").unwrap(), ["Audi", "BMW"]);
            assert_eq!(mat.numbers("labels").unwrap(), [1.0, 2.0, 3.0]);
        }
    }

    #[test]
    fn errors_name_the_file_the_variable_and_the_element() {
        let dir = tempfile::tempdir().unwrap();
        let path = fixture(dir.path(), false);
        let mat = Mat::load(&path).unwrap();
        let records = mat.structs("annotations").unwrap();
        let message = |e: Error| {
            let text = e.to_string();
            assert!(text.contains("fixture.mat"), "{text}");
            text
        };
        assert!(message(records[1].whole("class").unwrap_err()).contains("annotations(2).class"));
        assert!(message(records[0].string("bbox").unwrap_err()).contains("annotations(1).bbox"));
        assert!(message(records[0].string("class").unwrap_err()).contains("not text"));
        assert!(message(mat.strings("nothing").unwrap_err()).contains("`nothing`"));
        assert!(message(mat.strings("labels").unwrap_err()).contains("not a cell array"));
        assert!(message(mat.numbers("names").unwrap_err()).contains("`names`"));
        assert!(message(mat.structs("names").unwrap_err()).contains("not a struct array"));
    }

    #[test]
    fn a_truncated_or_foreign_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        for compress in [false, true] {
            let path = fixture(dir.path(), compress);
            let bytes = std::fs::read(&path).unwrap();
            for keep in [bytes.len() / 2, bytes.len() - 3, 200, 100] {
                std::fs::write(&path, &bytes[..keep]).unwrap();
                let loaded =
                    Mat::load(&path).and_then(|m| m.structs("annotations").map(|r| r.len()));
                let e = loaded.expect_err("a truncated file is refused");
                assert!(e.to_string().contains("fixture.mat"), "{e}");
            }
        }
        let text = dir.path().join("text.mat");
        std::fs::write(&text, "not a MAT file").unwrap();
        assert!(Mat::load(&text)
            .unwrap_err()
            .to_string()
            .contains("text.mat"));
        let missing = Mat::load(&dir.path().join("missing.mat")).unwrap_err();
        assert!(matches!(missing, Error::Io { .. }));
    }
}
