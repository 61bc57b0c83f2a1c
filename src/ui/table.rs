//! Aligned text tables for human output (`pilum list`). Each column is at least its minimum
//! width and grows to fit its widest cell, so a long value never pushes later columns out of
//! line; the last column is never padded.

/// Lay out `rows` (the header first) as aligned lines, one per row, without trailing spaces.
pub(crate) fn lines(min_widths: &[usize], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths = min_widths.to_vec();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(console::measure_text_width(cell));
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(cell);
                if let Some(w) = widths.get(i).filter(|_| i + 1 < row.len()) {
                    let pad = w.saturating_sub(console::measure_text_width(cell));
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(std::string::ToString::to_string).collect()
    }

    #[test]
    fn columns_keep_their_minimum_and_grow_for_long_cells() {
        let out = lines(&[4, 3], &[row(&["A", "B", "C"]), row(&["long-name", "x", "last"])]);
        assert_eq!(out, ["A         B   C", "long-name x   last"]);
    }

    #[test]
    fn last_column_is_not_padded() {
        let out = lines(&[6], &[row(&["a", ""]), row(&["b", "z"])]);
        assert_eq!(out, ["a", "b      z"]);
    }
}
