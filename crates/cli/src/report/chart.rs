//! The reports' charts, drawn with plotters' SVG backend into strings the page inlines. The
//! backend escapes the text it writes (labels, captions); the browser lays it out, so no font
//! is loaded here.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of a chart in SVG user units (the page scales it down on narrow screens).
const WIDTH: u32 = 1100;

/// Height of a chart.
const HEIGHT: u32 = 380;

/// Units of the integer axis one pair of bars takes (see `paired_panel`).
const SLOT: i32 = 100;

/// The chart font: the browser's sans-serif.
const FONT: &str = "sans-serif";

/// One colour per role, the same in every report.
const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xc4);
const SECOND: RGBColor = RGBColor(0x2f, 0x9e, 0x6e);
const OTHER: RGBColor = RGBColor(0xe0, 0x8a, 0x2b);
const MARK: RGBColor = RGBColor(0x33, 0x3a, 0x48);
const ALERT: RGBColor = RGBColor(0xc6, 0x28, 0x28);

/// An SVG document drawn by this module: the only markup a page takes unescaped.
pub(crate) struct Svg(String);

impl Svg {
    /// The SVG element.
    pub(crate) fn markup(&self) -> &str {
        &self.0
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws on a fresh white canvas of `size` and returns the SVG.
fn draw(
    size: (u32, u32),
    paint: impl FnOnce(&Area<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<Svg> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)?;
        paint(&root)?;
        root.present()?;
    }
    Ok(Svg(out))
}

/// Completions in one interval of a run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Interval {
    /// Seconds from the start of the run.
    pub(crate) start: f64,
    /// Seconds from the start of the run (after `start`).
    pub(crate) end: f64,
    /// Payments settled in it.
    pub(crate) settled: usize,
    /// Other answers in it (rejected, pending).
    pub(crate) other: usize,
}

impl Interval {
    fn rate(&self, count: usize) -> f64 {
        let width = self.end - self.start;
        if width > 0.0 {
            count as f64 / width
        } else {
            0.0
        }
    }
}

/// A horizontal line across a chart: a figure in the chart's unit and what it is.
pub(crate) struct Level {
    /// Where.
    pub(crate) value: f64,
    /// Its legend.
    pub(crate) label: String,
    /// Whether it is the limit the run is measured against (drawn in the alert colour).
    pub(crate) limit: bool,
}

/// Answers per second over the run, as bars per interval (settled, and the other answers on
/// top), with horizontal `levels` (the mean; the crypto ceiling when the bench measured one).
pub(crate) fn throughput(intervals: &[Interval], levels: &[Level]) -> anyhow::Result<Svg> {
    let end = intervals
        .iter()
        .map(|i| i.end)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let top = intervals
        .iter()
        .map(|i| i.rate(i.settled + i.other))
        .chain(levels.iter().map(|l| l.value))
        .fold(0.0_f64, f64::max);
    let top = nice_top(top);
    draw((WIDTH, HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..end, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(1)
            .x_desc("seconds since the first submission")
            .y_desc("answers per second")
            .y_label_formatter(&|v| short_number(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        chart
            .draw_series(intervals.iter().map(|i| {
                Rectangle::new(
                    [(i.start, 0.0), (i.end, i.rate(i.settled))],
                    BAR.mix(0.8).filled(),
                )
            }))?
            .label("settled")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], BAR.filled()));
        if intervals.iter().any(|i| i.other > 0) {
            chart
                .draw_series(intervals.iter().map(|i| {
                    let base = i.rate(i.settled);
                    Rectangle::new(
                        [(i.start, base), (i.end, base + i.rate(i.other))],
                        OTHER.mix(0.8).filled(),
                    )
                }))?
                .label("rejected or pending")
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], OTHER.filled()));
        }
        for level in levels {
            let colour = if level.limit { ALERT } else { MARK };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, level.value), (end, level.value)],
                    colour.stroke_width(2),
                )))?
                .label(level.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(MARK.mix(0.4))
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}

/// One bin of a histogram.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bin {
    /// Lower edge.
    pub(crate) from: f64,
    /// Upper edge.
    pub(crate) to: f64,
    /// Samples in `[from, to)` (the last bin includes its upper edge).
    pub(crate) count: usize,
}

/// A histogram of `bins` over `unit`, with vertical `markers` (percentiles) labelled at the
/// top.
pub(crate) fn histogram(
    bins: &[Bin],
    unit: &str,
    markers: &[(String, f64)],
) -> anyhow::Result<Svg> {
    let from = bins.first().map_or(0.0, |b| b.from);
    let to = bins.last().map_or(1.0, |b| b.to).max(from + 0.001);
    let most = bins.iter().map(|b| b.count).max().unwrap_or(0);
    let top = nice_top(most as f64 * 1.15);
    draw((WIDTH, HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(from..to, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(1)
            .x_desc(unit)
            .y_desc("payments")
            .y_label_formatter(&|v| short_number(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        chart.draw_series(bins.iter().map(|b| {
            Rectangle::new(
                [(b.from, 0.0), (b.to, b.count as f64)],
                BAR.mix(0.8).filled(),
            )
        }))?;
        // Alternate the label heights so that close percentiles stay readable.
        for (n, (label, at)) in markers.iter().enumerate() {
            let at = at.clamp(from, to);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(at, 0.0), (at, top * 0.9)],
                ALERT.stroke_width(2),
            )))?;
            let height = if n % 2 == 0 { 0.97 } else { 0.91 };
            chart.draw_series(std::iter::once(Text::new(
                label.clone(),
                (at, top * height),
                TextStyle::from((FONT, 13).into_font())
                    .color(&ALERT)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            )))?;
        }
        Ok(())
    })
}

/// A quantity over time as a line through its samples, `(seconds, value)`, with the axes
/// described by `x_desc` and `y_desc` (the bench's resident set size over the run).
pub(crate) fn line(points: &[(f64, f64)], x_desc: &str, y_desc: &str) -> anyhow::Result<Svg> {
    let end = points
        .iter()
        .map(|p| p.0)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let top = nice_top(points.iter().map(|p| p.1).fold(0.0_f64, f64::max) * 1.1);
    draw((WIDTH, HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..end, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(1)
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&|v| short_number(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        chart.draw_series(LineSeries::new(points.iter().copied(), BAR.stroke_width(2)))?;
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, BAR.filled())))?;
        Ok(())
    })
}

/// Two amounts side by side (a balance and the sum it must equal, or debits and credits).
pub(crate) struct Pair {
    /// What the pair is.
    pub(crate) label: String,
    /// The two values, for the bars' heights.
    pub(crate) values: [f64; 2],
    /// The two values as the report states them (exact decimals), written above the bars.
    pub(crate) texts: [String; 2],
    /// Whether the two must be equal and are not: marked.
    pub(crate) differs: bool,
}

/// One panel of pairs, in one unit.
pub(crate) struct Panel {
    /// The panel's title.
    pub(crate) title: String,
    /// The unit of its axis (a currency).
    pub(crate) unit: String,
    /// What the first and the second bar of each pair are.
    pub(crate) legend: [String; 2],
    /// The pairs.
    pub(crate) pairs: Vec<Pair>,
}

/// Panels side by side, each with its pairs as grouped bars.
pub(crate) fn paired_bars(panels: &[Panel]) -> anyhow::Result<Svg> {
    let columns = panels.len().max(1);
    let columns_u32 = u32::try_from(columns).unwrap_or(1);
    // Each panel gets at least 360 units, so that labels stay readable.
    let width = WIDTH.max(columns_u32.saturating_mul(360));
    draw((width, HEIGHT), |root| {
        let areas = root.split_evenly((1, columns));
        for (panel, area) in panels.iter().zip(areas.iter()) {
            paired_panel(panel, area)?;
        }
        Ok(())
    })
}

fn paired_panel(panel: &Panel, area: &Area<'_>) -> anyhow::Result<()> {
    let groups = panel.pairs.len().max(1);
    let most = panel
        .pairs
        .iter()
        .flat_map(|p| p.values)
        .fold(0.0_f64, f64::max);
    let top = nice_top(most * 1.2);
    // Each pair takes SLOT units of an integer axis (integers, because plotters formats the
    // labels of custom key points only on such an axis): its label at the centre, its bars
    // either side.
    let slots = i32::try_from(groups)
        .unwrap_or(i32::MAX / SLOT)
        .min(i32::MAX / SLOT);
    let centres: Vec<i32> = (0..slots).map(|g| g * SLOT + SLOT / 2).collect();
    let names: Vec<String> = panel.pairs.iter().map(|p| p.label.clone()).collect();
    let name_of = |x: &i32| {
        usize::try_from(x / SLOT)
            .ok()
            .and_then(|index| names.get(index).cloned())
            .unwrap_or_default()
    };
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption(&panel.title, (FONT, 16))
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d((0..slots * SLOT).with_key_points(centres), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(1)
        .x_label_formatter(&name_of)
        .y_desc(panel.unit.as_str())
        .y_label_formatter(&|v| short_number(*v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    // Where each pair's bars start within its slot, and how wide they are.
    const BAR_AT: [i32; 2] = [SLOT * 12 / 100, SLOT * 52 / 100];
    const BAR_WIDTH: i32 = SLOT * 36 / 100;
    let start =
        |g: usize, side: usize| i32::try_from(g).unwrap_or(0).saturating_mul(SLOT) + BAR_AT[side];
    for (side, colour) in [(0usize, BAR), (1, SECOND)] {
        chart
            .draw_series(panel.pairs.iter().enumerate().map(|(g, pair)| {
                let x = start(g, side);
                Rectangle::new(
                    [(x, 0.0), (x + BAR_WIDTH, pair.values[side])],
                    colour.mix(0.85).filled(),
                )
            }))?
            .label(panel.legend[side].clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        chart.draw_series(panel.pairs.iter().enumerate().map(|(g, pair)| {
            Text::new(
                pair.texts[side].clone(),
                (
                    start(g, side) + BAR_WIDTH / 2,
                    pair.values[side] + top * 0.02,
                ),
                TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
    }
    chart.draw_series(
        panel
            .pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.differs)
            .map(|(g, _)| {
                Text::new(
                    "≠ differs".to_owned(),
                    (start(g, 0) - BAR_AT[0] + SLOT / 2, top * 0.92),
                    TextStyle::from((FONT, 15).into_font())
                        .color(&ALERT)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )
            }),
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(MARK.mix(0.4))
        .label_font((FONT, 13))
        .draw()?;
    Ok(())
}

/// A round upper bound for an axis at or above `value` (1 for nothing to show).
pub(crate) fn nice_top(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10_f64.powf(value.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|top| *top >= value)
        .unwrap_or(value)
}

/// An axis label: 1.5k, 2M, 3.2G; small values with at most two decimals.
pub(crate) fn short_number(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, suffix) = if magnitude >= 1e12 {
        (value / 1e12, "T")
    } else if magnitude >= 1e9 {
        (value / 1e9, "G")
    } else if magnitude >= 1e6 {
        (value / 1e6, "M")
    } else if magnitude >= 1e4 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round_and_cover_the_value() {
        assert_eq!(nice_top(0.0), 1.0);
        assert_eq!(nice_top(f64::NAN), 1.0);
        assert_eq!(nice_top(7.0), 8.0);
        assert_eq!(nice_top(101.0), 120.0);
        assert_eq!(nice_top(1000.0), 1000.0);
        for value in [0.3, 3.7, 42.0, 999.0, 12_345.0] {
            assert!(nice_top(value) >= value, "{value}");
        }
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(2.5), "2.5");
        assert_eq!(short_number(1500.0), "1500");
        assert_eq!(short_number(25_000.0), "25k");
        assert_eq!(short_number(3_200_000_000.0), "3.2G");
    }

    #[test]
    fn charts_are_svg_with_their_labels_escaped() {
        let svg = paired_bars(&[Panel {
            title: "JP <corridor> & co".into(),
            unit: "JPY".into(),
            legend: ["booked".into(), "sum".into()],
            pairs: vec![Pair {
                label: "posted".into(),
                values: [5.0, 4.0],
                texts: ["5".into(), "4".into()],
                differs: true,
            }],
        }])
        .expect("draws");
        let markup = svg.markup();
        assert!(markup.trim_start().starts_with("<svg"), "{markup}");
        assert!(markup.contains("JP &lt;corridor&gt; &amp; co"), "{markup}");
        assert!(markup.contains("≠ differs"), "{markup}");
        assert!(!markup.contains("<corridor>"), "{markup}");
    }

    #[test]
    fn empty_data_still_draws() {
        assert!(throughput(&[], &[]).is_ok());
        assert!(histogram(&[], "ms", &[]).is_ok());
        assert!(paired_bars(&[]).is_ok());
    }
}
