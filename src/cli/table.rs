//! Plain text tables for human output: columns padded to their widest cell.
//!
//! Cells come from outside (template names and display names from the
//! directory, template names any account can plant in the CA's database), so
//! the printer bounds them: a cell longer than [`MAX_CELL_CHARS`] is cut and
//! ends with an ellipsis, and control characters (line breaks, terminal
//! escapes) are shown escaped rather than sent to the terminal. `--json`
//! output carries the full values. Padding is written by hand: the standard
//! formatter's width argument is limited to 65,535 and panics beyond it.

use std::fmt;

/// The longest cell printed whole, in characters.
pub const MAX_CELL_CHARS: usize = 512;

/// Marks a cell that was cut.
pub const ELLIPSIS: char = '…';

pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Table {
            rows: vec![header.iter().map(|s| cell(s)).collect()],
        }
    }

    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.iter().map(|s| cell(s)).collect());
    }
}

/// A cell as printed: control characters escaped, at most
/// [`MAX_CELL_CHARS`] characters, the last one an ellipsis when cut. Lazy, so
/// a huge cell costs no more than a long one.
fn cell(text: &str) -> String {
    let mut out: Vec<char> = text
        .chars()
        .flat_map(printable)
        .take(MAX_CELL_CHARS + 1)
        .collect();
    if out.len() > MAX_CELL_CHARS {
        out.truncate(MAX_CELL_CHARS - 1);
        out.push(ELLIPSIS);
    }
    out.into_iter().collect()
}

/// A character as shown: itself, or its escape (`\n`, `\u{1b}`) when it is a
/// control character that would break the layout or drive the terminal.
fn printable(c: char) -> impl Iterator<Item = char> {
    let control = c.is_control();
    let escaped = control.then(|| c.escape_default());
    escaped.into_iter().flatten().chain((!control).then_some(c))
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &self.rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < r.len() {
                    let pad = widths[c].saturating_sub(cell.chars().count()) + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(t: &Table) -> Vec<String> {
        t.to_string().lines().map(str::to_string).collect()
    }

    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let mut t = Table::new(["A", "BB", "C"]);
        t.row(["xxx".into(), "y".into(), "last".into()]);
        assert_eq!(lines(&t), ["A    BB  C", "xxx  y   last"]);
    }

    #[test]
    fn a_cell_beyond_the_formatters_width_limit_does_not_panic() {
        // 65,536 and more: the standard width argument would panic here.
        for len in [65_535, 65_536, 200_000] {
            let mut t = Table::new(["NAME", "DETAIL"]);
            t.row(["x".repeat(len), "after".into()]);
            t.row(["short".into(), "y".repeat(len)]);
            let out = lines(&t);
            assert_eq!(out.len(), 3);
            for l in &out {
                assert!(l.chars().count() <= 2 * MAX_CELL_CHARS + 2, "{}", l.len());
            }
            assert!(
                out[1].ends_with("…  after"),
                "{}",
                &out[1][out[1].len() - 20..]
            );
            assert!(out[2].ends_with(ELLIPSIS));
        }
    }

    #[test]
    fn cells_are_cut_at_the_limit_with_a_visible_ellipsis() {
        let whole = "a".repeat(MAX_CELL_CHARS);
        assert_eq!(cell(&whole), whole);
        let long = "é".repeat(MAX_CELL_CHARS + 1);
        let cut = cell(&long);
        assert_eq!(cut.chars().count(), MAX_CELL_CHARS);
        assert!(cut.ends_with(ELLIPSIS));
        assert!(cut.starts_with("éé"));
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(cell("a\nb\u{1b}[31mc\t"), "a\\nb\\u{1b}[31mc\\t");
        let mut t = Table::new(["X"]);
        t.row(["two\nlines".into()]);
        assert_eq!(lines(&t), ["X", "two\\nlines"]);
    }
}
