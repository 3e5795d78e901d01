//! "Did you mean ...?" for mistyped rollout names.

/// Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between the first i chars of a and the first j chars of b.
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// The candidate most like `wanted`, if one is close enough to be what was meant.
pub fn closest<'a>(wanted: &str, candidates: &'a [String]) -> Option<&'a str> {
    let allowed = (wanted.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|candidate| {
            // A prefix ("istio" for "istio-demo") is as good as one typo.
            let distance = if candidate.starts_with(wanted) { 1 } else { edit_distance(wanted, candidate) };
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_typos() {
        assert_eq!(edit_distance("web", "web"), 0);
        assert_eq!(edit_distance("wbe", "web"), 1, "a swap is one edit");
        assert_eq!(edit_distance("we", "web"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn only_close_names_are_suggested() {
        let names = vec!["web".to_string(), "istio-demo".to_string(), "api".to_string()];
        assert_eq!(closest("wbe", &names), Some("web"));
        assert_eq!(closest("istio-dmeo", &names), Some("istio-demo"));
        assert_eq!(closest("istio", &names), Some("istio-demo"));
        assert_eq!(closest("payments", &names), None);
        assert_eq!(closest("x", &[]), None);
    }
}
