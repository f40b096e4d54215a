//! Summaries of latency samples and the final table.

use std::fmt::Write as _;
use std::time::Duration;

/// Percentiles and mean of a set of durations.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

impl Summary {
    /// Summarises `samples` (sorted in place). Fails on an empty set, which means the measurement did not run.
    pub fn of(samples: &mut [Duration]) -> anyhow::Result<Self> {
        anyhow::ensure!(!samples.is_empty(), "no samples were taken");
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        let count = samples.len();
        Ok(Self {
            count,
            p50: percentile(samples, 50),
            p90: percentile(samples, 90),
            p99: percentile(samples, 99),
            max: samples[count - 1],
            mean: total / u32::try_from(count)?,
        })
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Microseconds, for the table.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds, for the table.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Whether a row has a target, and whether it was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// For information only.
    Info,
    /// Target met.
    Met,
    /// Target missed.
    Missed,
}

impl Verdict {
    /// `Met` when `ok`, else `Missed`.
    pub fn from_bool(ok: bool) -> Self {
        if ok { Self::Met } else { Self::Missed }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Info => "-",
            Self::Met => "yes",
            Self::Missed => "NO",
        }
    }
}

/// One line of the final table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured, with its unit.
    pub measure: String,
    /// codexd's number.
    pub codexd: String,
    /// The baseline's number, or `-`.
    pub baseline: String,
    /// codexd / baseline, or `-`.
    pub ratio: String,
    /// The target, or `-`.
    pub target: String,
    /// Met or not.
    pub verdict: Verdict,
}

/// The final table, as a list of rows printed with aligned columns (and valid Markdown).
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// Adds a row.
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Rows whose target was missed.
    pub fn missed(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Missed)
    }

    /// The table as Markdown with padded columns.
    pub fn render(&self) -> String {
        let header = ["measure", "codexd", "baseline", "ratio", "target", "met?"];
        let cells: Vec<[&str; 6]> = self
            .rows
            .iter()
            .map(|r| [&*r.measure, &*r.codexd, &*r.baseline, &*r.ratio, &*r.target, r.verdict.label()])
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, row: &[&str; 6]| {
            out.push('|');
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                let pad = w - cell.chars().count();
                if i == 0 {
                    let _ = write!(out, " {cell}{} |", " ".repeat(pad));
                } else {
                    let _ = write!(out, " {}{cell} |", " ".repeat(pad));
                }
            }
            out.push('\n');
        };
        line(&mut out, &header);
        out.push('|');
        for (i, w) in widths.iter().enumerate() {
            let dashes = "-".repeat(*w);
            if i == 0 {
                let _ = write!(out, "-{dashes}-|");
            } else {
                let _ = write!(out, "-{dashes}:|");
            }
        }
        out.push('\n');
        for row in &cells {
            line(&mut out, row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Summary::of(&mut samples).unwrap();
        assert_eq!(s.p50, Duration::from_micros(50));
        assert_eq!(s.p99, Duration::from_micros(99));
        assert_eq!(s.max, Duration::from_micros(100));
        assert_eq!(s.count, 100);
    }
}
