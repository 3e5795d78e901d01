//! Text for people, as pure functions of objects and an injected `now`: no I/O, no clock, so
//! every screen can be snapshot-tested.

mod analysis;
mod get;
mod list;
mod summary;
mod tree;
mod tree_runs;

pub use analysis::{render_analysis_run, render_analysis_runs};
pub use get::render_get;
pub use list::render_list;
pub use summary::{PauseState, ReplicaCounts, Summary};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use crate::phase::{Phase, PhaseInfo};

/// Whether to decorate output with colour and icons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    pub icons: bool,
}

impl Style {
    /// For pipes, files, tests and NO_COLOR.
    pub const PLAIN: Style = Style { color: false, icons: false };
    pub const TERMINAL: Style = Style { color: true, icons: true };

    /// Decorations only for a person at a terminal who hasn't opted out with NO_COLOR.
    pub fn detect(stdout_is_terminal: bool, no_color_set: bool) -> Style {
        if stdout_is_terminal && !no_color_set { Style::TERMINAL } else { Style::PLAIN }
    }

    fn paint(self, text: &str, color: Color) -> String {
        if self.color { format!("\x1b[{}m{text}\x1b[0m", color.code()) } else { text.to_string() }
    }

    /// `✔ Healthy` on a terminal, `Healthy` elsewhere.
    fn badge(self, health: Health, text: &str) -> String {
        let label = if self.icons { format!("{} {text}", health.icon()) } else { text.to_string() };
        self.paint(&label, health.color())
    }

    /// What stands between a tree connector and a node's name: its icon, or a space.
    fn node_icon(self, icon: &str) -> String {
        if self.icons { format!("{icon} ") } else { " ".to_string() }
    }
}

#[derive(Clone, Copy)]
enum Color {
    Red,
    Green,
    Yellow,
    Cyan,
    Grey,
}

impl Color {
    fn code(self) -> u8 {
        match self {
            Color::Red => 31,
            Color::Green => 32,
            Color::Yellow => 33,
            Color::Cyan => 36,
            Color::Grey => 90,
        }
    }
}

/// The states that icons tell apart, for rollouts, ReplicaSets and pods alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Healthy,
    Progressing,
    Paused,
    Degraded,
    Error,
    Unknown,
    ScaledDown,
}

impl Health {
    fn icon(self) -> &'static str {
        match self {
            Health::Healthy => "✔",
            Health::Progressing => "◌",
            Health::Paused => "॥",
            Health::Degraded => "✖",
            Health::Error => "⚠",
            Health::Unknown => "?",
            Health::ScaledDown => "•",
        }
    }

    fn color(self) -> Color {
        match self {
            Health::Healthy => Color::Green,
            Health::Progressing => Color::Yellow,
            Health::Paused => Color::Cyan,
            Health::Degraded | Health::Error => Color::Red,
            Health::Unknown | Health::ScaledDown => Color::Grey,
        }
    }

    fn of_phase(info: &PhaseInfo) -> Health {
        match info.phase {
            _ if info.invalid_spec() => Health::Error,
            Phase::Healthy => Health::Healthy,
            Phase::Progressing => Health::Progressing,
            Phase::Paused => Health::Paused,
            Phase::Degraded => Health::Degraded,
            Phase::Unknown => Health::Unknown,
        }
    }
}

fn phase_badge(style: Style, info: &PhaseInfo) -> String {
    style.badge(Health::of_phase(info), &info.phase.to_string())
}

/// Width on screen: characters, not counting colour escapes.
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (false, _) => width += 1,
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    width
}

/// Left-aligned columns two spaces apart, without trailing spaces.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| rows.iter().filter_map(|row| row.get(column)).map(|cell| visible_width(cell)).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if column + 1 < row.len() {
                line.push_str(&" ".repeat(widths[column] - visible_width(cell) + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A duration the way Go prints one, which is what `--in` and pause durations are written in:
/// `0s`, `45s`, `1m30s`, `2h0m5s`.
pub fn go_duration(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

/// An age the way kubectl shows one: precise when recent, coarse when old.
fn age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 600 && s % 60 == 0 => format!("{minutes}m"),
        s if s < 600 => format!("{minutes}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{minutes}m"),
        s if s < 8 * 3600 => format!("{hours}h{}m", minutes % 60),
        s if s < 48 * 3600 => format!("{hours}h"),
        s if s < 8 * 86_400 => format!("{days}d{}h", hours % 24),
        _ => format!("{days}d"),
    }
}

/// How long ago `meta`'s object was created.
fn age_of(meta: &ObjectMeta, now: Timestamp) -> String {
    meta.creation_timestamp.as_ref().map_or_else(String::new, |Time(created)| since(created, now))
}

/// The age of something that happened at `then`.
fn since(then: &Timestamp, now: Timestamp) -> String {
    age(now.as_second() - then.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go_and_ages_like_kubectl() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(90), "1m30s");
        assert_eq!(go_duration(7205), "2h0m5s");
        assert_eq!(age(-3), "0s");
        assert_eq!(age(119), "119s");
        assert_eq!(age(150), "2m30s");
        assert_eq!(age(300), "5m");
        assert_eq!(age(3000), "50m");
        assert_eq!(age(4 * 3600 + 120), "4h2m");
        assert_eq!(age(30 * 3600), "30h");
        assert_eq!(age(3 * 86_400 + 3600), "3d1h");
        assert_eq!(age(30 * 86_400), "30d");
    }

    #[test]
    fn styles_follow_the_terminal_and_no_color() {
        assert_eq!(Style::detect(true, false), Style::TERMINAL);
        assert_eq!(Style::detect(true, true), Style::PLAIN);
        assert_eq!(Style::detect(false, false), Style::PLAIN);
        assert_eq!(Style::TERMINAL.badge(Health::Healthy, "Healthy"), "\x1b[32m✔ Healthy\x1b[0m");
        assert_eq!(Style::PLAIN.badge(Health::Healthy, "Healthy"), "Healthy");
        let icons_only = Style { color: false, icons: true };
        let icons: Vec<String> = [
            Health::Healthy,
            Health::Progressing,
            Health::Paused,
            Health::Degraded,
            Health::Error,
            Health::Unknown,
            Health::ScaledDown,
        ]
        .into_iter()
        .map(|health| icons_only.badge(health, "x"))
        .collect();
        assert_eq!(icons, ["✔ x", "◌ x", "॥ x", "✖ x", "⚠ x", "? x", "• x"]);
    }

    #[test]
    fn an_invalid_spec_gets_the_error_icon() {
        let invalid =
            PhaseInfo { phase: Phase::Degraded, message: "InvalidSpec: The Rollout \"web\" is invalid".into() };
        let aborted = PhaseInfo { phase: Phase::Degraded, message: "RolloutAborted: Rollout aborted".into() };
        let icons_only = Style { color: false, icons: true };
        assert_eq!(phase_badge(icons_only, &invalid), "⚠ Degraded");
        assert_eq!(phase_badge(icons_only, &aborted), "✖ Degraded");
    }

    #[test]
    fn tables_align_on_visible_width() {
        let rows = vec![
            vec!["NAME".to_string(), "STATUS".to_string(), "AGE".to_string()],
            vec!["web".to_string(), Style::TERMINAL.badge(Health::Healthy, "Healthy"), "5s".to_string()],
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME  STATUS     AGE");
        assert_eq!(visible_width(lines[1]), "web   ✔ Healthy  5s".chars().count());
    }
}
