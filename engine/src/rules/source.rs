//! Reading rules files from disk, with the size and count limits that keep
//! a hostile or mistaken file from exhausting memory, and byte offsets
//! turned into the line and column numbers that diagnostics print.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::diagnostic::{CheckError, Diagnostic};

/// Maximum size of one rules file.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Maximum number of `*.toml` files read from a rules folder.
pub const MAX_FILES: usize = 64;

/// A byte range in one of the files of a load.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Loc {
    /// Position of the file in load order.
    pub file: usize,
    pub span: Range<usize>,
}

/// One rules file and its text.
#[derive(Debug)]
pub(crate) struct SourceFile {
    /// Position of the file in load order.
    pub index: usize,
    pub path: PathBuf,
    pub text: String,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub(crate) fn new(index: usize, path: PathBuf, text: String) -> SourceFile {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        SourceFile {
            index,
            path,
            text,
            line_starts,
        }
    }

    /// Returns the 1-based line and the 1-based column, counted in
    /// characters, of a byte offset.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = self.floor_char_boundary(offset.min(self.text.len()));
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(index) => index,
            Err(index) => index - 1,
        };
        let line_start = self.line_starts[line_index];
        let column = self.text[line_start..offset].chars().count() + 1;
        (line_index + 1, column)
    }

    /// Returns the text of a 1-based line, without its line ending.
    pub(crate) fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |next| next - 1);
        self.text[start..end].trim_end_matches('\r')
    }

    /// Returns the byte range of the 1-based line that contains `offset`.
    pub(crate) fn line_range(&self, line: usize) -> Range<usize> {
        let start = self.line_starts[line - 1];
        start..start + self.line_text(line).len()
    }

    fn floor_char_boundary(&self, mut offset: usize) -> usize {
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

/// Reads a rules file, or every `*.toml` file of a folder in file-name
/// order. Hidden files (names starting with `.`) are skipped.
pub(crate) fn read_sources(path: &Path) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    let metadata = fs::metadata(path).map_err(|error| {
        vec![Diagnostic::without_position(
            path,
            CheckError::Unreadable {
                path: path.display().to_string(),
                reason: error.to_string(),
            },
        )]
    })?;
    if !metadata.is_dir() {
        return read_file(path, 0)
            .map(|file| vec![file])
            .map_err(|error| vec![Diagnostic::without_position(path, error)]);
    }

    let paths = list_rules_files(path)?;
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    for (index, file_path) in paths.into_iter().enumerate() {
        match read_file(&file_path, index) {
            Ok(file) => files.push(file),
            Err(error) => diagnostics.push(Diagnostic::without_position(&file_path, error)),
        }
    }
    if diagnostics.is_empty() {
        Ok(files)
    } else {
        Err(diagnostics)
    }
}

fn list_rules_files(folder: &Path) -> Result<Vec<PathBuf>, Vec<Diagnostic>> {
    let unreadable = |error: std::io::Error| {
        vec![Diagnostic::without_position(
            folder,
            CheckError::Unreadable {
                path: folder.display().to_string(),
                reason: error.to_string(),
            },
        )]
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(folder).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        let file_path = entry.path();
        if file_path.is_file() {
            paths.push(file_path);
        }
    }
    paths.sort();

    if paths.is_empty() {
        return Err(vec![Diagnostic::without_position(
            folder,
            CheckError::EmptyFolder {
                path: folder.display().to_string(),
            },
        )]);
    }
    if paths.len() > MAX_FILES {
        return Err(vec![Diagnostic::without_position(
            folder,
            CheckError::TooManyFiles {
                path: folder.display().to_string(),
                count: paths.len(),
                max: MAX_FILES,
            },
        )]);
    }
    Ok(paths)
}

fn read_file(path: &Path, index: usize) -> Result<SourceFile, CheckError> {
    let unreadable = |error: std::io::Error| CheckError::Unreadable {
        path: path.display().to_string(),
        reason: error.to_string(),
    };
    let too_large = |size: u64| CheckError::FileTooLarge {
        path: path.display().to_string(),
        size,
        max: MAX_FILE_BYTES,
    };
    let size = fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    let bytes = fs::read(path).map_err(unreadable)?;
    // The file may have grown between the size check and the read.
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|error| CheckError::NotUtf8 {
        path: path.display().to_string(),
        offset: error.utf8_error().valid_up_to(),
    })?;
    Ok(SourceFile::new(index, path.to_path_buf(), text))
}
