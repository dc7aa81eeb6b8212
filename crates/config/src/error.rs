//! Configuration errors that point at the file, line, column and field, and the collector
//! that gathers every one of them in a single pass.
//!
//! Not here: deciding what is wrong. The walker and the checks decide; this module only turns
//! a byte span into a position people can jump to, and keeps the list.

use std::fmt;
use std::ops::Range;

/// One problem in a configuration file.
///
/// Displayed as `vitals.toml:14:11: target[2] ("api").timeout: 40s is longer than interval
/// 30s; a check must finish before the next one starts`. `line` and `column` count from 1;
/// they are 0 when the problem has no position (the file could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The dotted path of the field, such as `server.listen` or `target[2] ("api").timeout`.
    /// Targets count from 0, in file order, and carry their id when it is known so that
    /// people need not count. Empty for syntax and I/O errors, which belong to no field.
    pub field: String,
    /// Lowercase; names the bad input and the fix.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, " {}:", self.field)?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration, in file order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A byte range in the configuration text.
pub(super) type Span = Range<usize>;

/// Collects errors while the document is walked, converting spans to positions.
#[derive(Debug)]
pub(super) struct Diag<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl<'a> Diag<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Diag {
            file,
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// Line and column (both from 1, the column in characters) of a byte offset.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        // An offset inside a multi-byte character counts as that character.
        let column = self.text.get(start..).map_or(0, |rest| {
            rest.char_indices()
                .take_while(|(i, _)| start + i < offset)
                .count()
        });
        (line.max(1), column + 1)
    }

    pub(super) fn error(
        &mut self,
        span: &Span,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = self.position(span.start);
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        });
    }

    /// The line of a span, for messages that refer to another place ("first defined on line 3").
    pub(super) fn line_of(&self, span: &Span) -> usize {
        self.position(span.start).0
    }

    /// The source text of a span, for messages that quote it.
    pub(super) fn text(&self, span: &Span) -> &'a str {
        self.text.get(span.clone()).unwrap_or("")
    }

    /// The errors in file order (the walk visits keys alphabetically, not in file order).
    pub(super) fn finish(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| (e.line, e.column));
        self.errors
    }
}

/// An error that belongs to the whole file rather than a place in it.
pub(super) fn file_error(file: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        file: file.to_owned(),
        line: 0,
        column: 0,
        field: String::new(),
        message,
    }])
}
