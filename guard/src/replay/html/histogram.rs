//! The slippage distribution: every applied fill's adverse slippage in buckets of
//! 0.1 bps, gathered into a few dozen round bins for the chart, with the policy's
//! threshold marked.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::escape::escape;

/// Adverse slippage (bps, positive = worse than expected) of every fill counted.
///
/// A fill of `x` bps lands in the fine bucket `ceil(10 x)`, which holds
/// `((k - 1) / 10, k / 10]`: a bucket's upper edge belongs to it, as a breach is a
/// slippage *strictly greater* than the threshold, so fills at the threshold fall
/// left of it. Memory is one entry per 0.1 bps that some fill reached.
#[derive(Clone, Debug, Default)]
pub struct SlippageHistogram {
    fine: BTreeMap<i64, u64>,
    threshold_bps: f64,
    count: u64,
    above: u64,
    sum: f64,
    min: f64,
    max: f64,
}

/// One bar of the chart: fills with `low < bps <= high`; an open end (`None`) gathers
/// the tails beyond the bins shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Bin {
    /// The lower edge (not included); `None`: from the lowest fill on.
    pub low: Option<f64>,
    /// The upper edge (included); `None`: up to the highest fill.
    pub high: Option<f64>,
    /// Fills in it.
    pub count: u64,
}

/// At most this many bins between the tails.
const MAX_BINS: i64 = 40;
/// The tails left out of the bins (each side) are at most this share of the fills.
const TAIL: f64 = 0.01;

/// Fine buckets beyond ±10^14 bps (a price off by that much) share the last one.
const KEY_LIMIT: i64 = 1_000_000_000_000_000;

/// `a / b` rounded up, for `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

impl SlippageHistogram {
    /// An empty histogram that counts fills above `threshold_bps` exactly.
    pub fn new(threshold_bps: f64) -> Self {
        SlippageHistogram {
            threshold_bps,
            ..SlippageHistogram::default()
        }
    }

    /// Counts one fill's adverse slippage.
    pub fn add(&mut self, bps: f64) {
        // A float cast saturates; the clamp keeps bucket arithmetic far from overflow.
        let key = ((bps * 10.0).ceil() as i64).clamp(-KEY_LIMIT, KEY_LIMIT);
        *self.fine.entry(key).or_default() += 1;
        if self.count == 0 {
            (self.min, self.max) = (bps, bps);
        }
        self.count += 1;
        self.sum += bps;
        self.min = self.min.min(bps);
        self.max = self.max.max(bps);
        if bps > self.threshold_bps {
            self.above += 1;
        }
    }

    /// The threshold fills are compared with.
    pub fn threshold_bps(&self) -> f64 {
        self.threshold_bps
    }

    /// Fills counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Fills strictly above the threshold.
    pub fn above(&self) -> u64 {
        self.above
    }

    /// The mean, lowest and highest slippage, if any fill was counted.
    pub fn stats(&self) -> Option<(f64, f64, f64)> {
        (self.count > 0).then(|| (self.sum / self.count as f64, self.min, self.max))
    }

    /// The fine bucket below which lie at most `share` of the fills.
    fn quantile_key(&self, share: f64) -> i64 {
        let want = ((self.count as f64 * share).ceil() as u64).max(1);
        let mut seen = 0;
        for (key, n) in &self.fine {
            seen += n;
            if seen >= want {
                return *key;
            }
        }
        self.fine.keys().next_back().copied().unwrap_or(0)
    }

    /// The bins of the chart: round widths (0.1, 0.2, 0.5, 1, 2, 5, … bps) over the
    /// middle 98% of the fills, zero and both sides of the threshold, at most 40 of
    /// them, and an open bin at either end for the tails beyond; every fill is in
    /// exactly one bin. Empty without fills.
    pub fn bins(&self) -> Vec<Bin> {
        if self.count == 0 {
            return Vec::new();
        }
        let t_key = ((self.threshold_bps * 10.0).ceil() as i64).clamp(-KEY_LIMIT, KEY_LIMIT);
        let lo = self.quantile_key(TAIL).min(0).min(t_key);
        let hi = self.quantile_key(1.0 - TAIL).max(1).max(t_key + 1);
        let width = [1i64, 2, 5]
            .iter()
            .flat_map(|m| (0..18).map(move |e| m * 10i64.pow(e)))
            .filter(|w| ceil_div(hi, *w) - ceil_div(lo, *w) < MAX_BINS)
            .min()
            .unwrap_or(i64::MAX / 4);
        let (lo_b, hi_b) = (ceil_div(lo, width), ceil_div(hi, width));
        let edge = |b: i64| (b * width) as f64 / 10.0;
        let mut counts = vec![0u64; (hi_b - lo_b + 1) as usize];
        let (mut below, mut beyond) = (0, 0);
        for (key, n) in &self.fine {
            let b = ceil_div(*key, width);
            match b {
                b if b < lo_b => below += n,
                b if b > hi_b => beyond += n,
                b => counts[(b - lo_b) as usize] += n,
            }
        }
        let mut bins = Vec::with_capacity(counts.len() + 2);
        if below > 0 {
            bins.push(Bin {
                low: None,
                high: Some(edge(lo_b - 1)),
                count: below,
            });
        }
        bins.extend(counts.iter().enumerate().map(|(i, n)| Bin {
            low: Some(edge(lo_b + i as i64 - 1)),
            high: Some(edge(lo_b + i as i64)),
            count: *n,
        }));
        if beyond > 0 {
            bins.push(Bin {
                low: Some(edge(hi_b)),
                high: None,
                count: beyond,
            });
        }
        bins
    }
}

impl Bin {
    /// `(a, b] bps`, `≤ b bps` or `> a bps`.
    pub fn label(&self) -> String {
        match (self.low, self.high) {
            (Some(a), Some(b)) => format!("({a}, {b}] bps"),
            (None, Some(b)) => format!("≤ {b} bps"),
            (Some(a), None) => format!("> {a} bps"),
            (None, None) => "all".into(),
        }
    }
}

const WIDTH: f64 = 1120.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 46.0;

/// The chart's SVG (`id="slippage"`): one `class="bar"` per bin (`bar breach` for
/// those wholly above the threshold), titled with its range and count; the threshold
/// as `id="threshold-line"`.
pub(super) fn svg(bins: &[Bin], threshold_bps: f64) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bar_w = plot_w / bins.len().max(1) as f64;
    let most = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg id=\"slippage\" class=\"chart\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"fills per slippage bin\">"
    );
    y_axis(&mut s, most, plot_h);
    let label_every = (bins.len() / 12).max(1);
    for (i, bin) in bins.iter().enumerate() {
        let x = LEFT + bar_w * i as f64;
        let h = bin.count as f64 / most as f64 * plot_h;
        let breach = bin.low.is_some_and(|low| low >= threshold_bps);
        let _ = writeln!(
            s,
            "<rect class=\"bar{}\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{h:.2}\">\
             <title>{}: {} fills</title></rect>",
            if breach { " breach" } else { "" },
            x + 1.0,
            TOP + plot_h - h,
            (bar_w - 2.0).max(1.0),
            escape(&bin.label()),
            bin.count
        );
        let open = bin.low.is_none() || bin.high.is_none();
        if open || i % label_every == 0 {
            let text = match (bin.low, bin.high) {
                (Some(a), Some(_)) => format!("{a}"),
                _ => bin.label().replace(" bps", ""),
            };
            let at = if open { x + bar_w / 2.0 } else { x };
            let _ = writeln!(
                s,
                "<text class=\"tick\" x=\"{at:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + plot_h + 16.0,
                escape(&text)
            );
        }
    }
    if let Some(Bin {
        low: Some(_),
        high: Some(high),
        ..
    }) = bins.last()
    {
        let _ = writeln!(
            s,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{high}</text>",
            LEFT + plot_w,
            TOP + plot_h + 16.0
        );
    }
    threshold(&mut s, bins, threshold_bps, bar_w, plot_h);
    let _ = writeln!(
        s,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">adverse slippage (bps; a bar holds low &lt; x ≤ high)</text>\n</svg>",
        LEFT + plot_w / 2.0,
        HEIGHT - 6.0
    );
    s
}

fn y_axis(s: &mut String, most: u64, plot_h: f64) {
    let _ = writeln!(
        s,
        "<text class=\"axis-title\" x=\"{}\" y=\"{}\" text-anchor=\"end\">fills</text>",
        LEFT - 6.0,
        TOP - 10.0
    );
    for frac in [0.0, 0.5, 1.0] {
        let y = TOP + plot_h - frac * plot_h;
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            (most as f64 * frac).round()
        );
    }
}

/// The threshold's line, at its place among the bins with edges.
fn threshold(s: &mut String, bins: &[Bin], threshold_bps: f64, bar_w: f64, plot_h: f64) {
    let place = bins
        .iter()
        .enumerate()
        .find_map(|(i, b)| match (b.low, b.high) {
            (Some(a), Some(z)) if a <= threshold_bps && threshold_bps <= z => {
                Some(i as f64 + (threshold_bps - a) / (z - a))
            }
            _ => None,
        });
    let Some(place) = place else { return };
    let x = LEFT + bar_w * place;
    let _ = writeln!(
        s,
        "<line id=\"threshold-line\" class=\"threshold\" x1=\"{x:.2}\" y1=\"{:.1}\" x2=\"{x:.2}\" y2=\"{:.1}\"/>\
         <text class=\"threshold-label\" x=\"{:.2}\" y=\"{:.1}\">threshold {} bps</text>",
        TOP - 8.0,
        TOP + plot_h,
        x + 4.0,
        TOP - 4.0,
        threshold_bps
    );
}
