//! Tables as `kubectl get` prints them: a header, columns aligned by three spaces, on stdout.

use super::error::PluginError;
use std::io::Write;

/// Prints `rows` under `header`, each column as wide as its widest cell.
pub fn print_table<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> Result<(), PluginError> {
    let mut out = std::io::stdout().lock();
    for line in table_lines(header, rows) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The lines of the table (trailing spaces trimmed).
fn table_lines<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> Vec<String> {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let all = || {
        std::iter::once(header.as_slice())
            .chain(rows.iter().map(|row: &R| -> &[String] { row.as_ref() }))
    };
    let mut widths = vec![0usize; header.len()];
    for row in all() {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    all()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, &w)| format!("{cell:<w$}"))
                .collect();
            cells.join("   ").trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let rows = vec![
            vec!["eu".to_owned(), "True".to_owned()],
            vec!["payments".to_owned(), "-".to_owned()],
        ];
        assert_eq!(
            table_lines(&["NAME", "READY"], &rows),
            ["NAME       READY", "eu         True", "payments   -"]
        );
    }
}
