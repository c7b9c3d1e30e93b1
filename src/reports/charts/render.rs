//! The charts as PNG images, drawn with `plotters` on its bitmap backend with an embedded
//! font (DejaVu Sans, `assets/`), so no system fonts are needed. Colours are the
//! Okabe–Ito palette, told apart with colour-blind eyes.

use super::{hour_label, ChartData, HOURS_OF_WEEK};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::sync::Once;
use thiserror::Error;

pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 520;

const FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
const BLUE: RGBColor = RGBColor(0, 114, 178);
const ORANGE: RGBColor = RGBColor(230, 159, 0);
const VERMILLION: RGBColor = RGBColor(213, 94, 0);
const SKY: RGBColor = RGBColor(86, 180, 233);
const GREEN: RGBColor = RGBColor(0, 158, 115);

#[derive(Debug, Error)]
#[error("the chart could not be drawn: {0}")]
pub struct ChartError(String);

fn err(e: impl std::fmt::Display) -> ChartError {
    ChartError(e.to_string())
}

fn font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is ours and known good; a failure leaves text undrawn, not a panic.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draw into an RGB buffer and encode it as PNG.
fn png(
    draw: impl FnOnce(DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), ChartError>,
) -> Result<Vec<u8>, ChartError> {
    font();
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(root.clone())?;
        root.present().map_err(err)?;
    }
    let mut out = Vec::new();
    {
        let mut encoder = ::png::Encoder::new(&mut out, WIDTH, HEIGHT);
        encoder.set_color(::png::ColorType::Rgb);
        encoder.set_depth(::png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(err)?;
        writer.write_image_data(&rgb).map_err(err)?;
    }
    Ok(out)
}

/// The week chart's x axis is in days: one week, and one hour of it.
const DAYS: f64 = (HOURS_OF_WEEK / 24) as f64;
const HOUR: f64 = 1.0 / 24.0;

/// Mentions per hour of the week (bars), cover (line, right scale), uncovered hours as
/// vermillion bands, the largest uncovered run's share as the subtitle.
pub fn week_png(data: &ChartData) -> Result<Vec<u8>, ChartError> {
    let week = &data.week;
    let top = week.mentions.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.15;
    let cover_top = week
        .coverage
        .iter()
        .flatten()
        .fold(1.0f64, |a, b| a.max(*b))
        * 1.2;
    png(|root| {
        let (title, body) = root.split_vertically(60);
        title
            .draw_text(
                &format!("Mentions per hour of the week — {}", data.caption()),
                &("sans-serif", 18).into_font().color(&BLACK),
                (10, 8),
            )
            .map_err(err)?;
        title
            .draw_text(
                &data.gap_sentence,
                &("sans-serif", 16).into_font().color(&VERMILLION),
                (10, 34),
            )
            .map_err(err)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .right_y_label_area_size(50)
            // x in days, so the axis is labelled where each day begins.
            .build_cartesian_2d(0f64..DAYS, 0f64..top)
            .map_err(err)?
            .set_secondary_coord(0f64..DAYS, 0f64..cover_top);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(8)
            .x_label_formatter(&|x| hour_label((x * 24.0).round() as usize))
            // Mentions are whole: no label between two counts.
            .y_label_formatter(&|y| {
                if y.fract() == 0.0 {
                    format!("{y:.0}")
                } else {
                    String::new()
                }
            })
            .y_desc("mentions")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        chart
            .configure_secondary_axes()
            .y_desc("agents on shift")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(week.uncovered.iter().map(|h| {
                let x = *h as f64 / 24.0;
                Rectangle::new([(x, 0.0), (x + HOUR, top)], VERMILLION.mix(0.25).filled())
            }))
            .map_err(err)?
            .label("nobody on shift")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], VERMILLION.mix(0.25).filled())
            });
        chart
            .draw_series(week.mentions.iter().enumerate().map(|(h, n)| {
                let x = h as f64 / 24.0;
                Rectangle::new(
                    [(x + 0.1 * HOUR, 0.0), (x + 0.9 * HOUR, *n as f64)],
                    BLUE.filled(),
                )
            }))
            .map_err(err)?
            .label("mentions")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLUE.filled()));
        chart
            .draw_secondary_series(LineSeries::new(
                week.coverage
                    .iter()
                    .enumerate()
                    .filter_map(|(h, c)| c.map(|c| ((h as f64 + 0.5) * HOUR, c))),
                ORANGE.stroke_width(2),
            ))
            .map_err(err)?
            .label("agents on shift (right)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], ORANGE.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// Median and p90 first response (minutes) by local hour of the day.
pub fn first_response_png(data: &ChartData) -> Result<Vec<u8>, ChartError> {
    let top = data
        .first_response
        .iter()
        .filter_map(|h| h.p90_minutes)
        .fold(1.0f64, f64::max)
        * 1.15;
    png(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("First response by hour received — {}", data.caption()),
                ("sans-serif", 18),
            )
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..24f64, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(24)
            .x_label_formatter(&|x| format!("{:02}", *x as u32))
            .x_desc("hour of day")
            .y_desc("minutes")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        for (label, colour, pick) in [("median", BLUE, 0usize), ("p90", ORANGE, 1usize)] {
            let points: Vec<(f64, f64)> = data
                .first_response
                .iter()
                .filter_map(|h| {
                    let v = if pick == 0 {
                        h.median_minutes
                    } else {
                        h.p90_minutes
                    };
                    v.map(|v| (h.hour as f64 + 0.5, v))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 15, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 4, colour.filled())),
                )
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// SLA % per day (bars) and CSAT per day (right panel; "no survey answers yet" when none).
pub fn daily_png(data: &ChartData) -> Result<Vec<u8>, ChartError> {
    let days = &data.daily;
    let n = days.len().max(1) as f64;
    let label_every = (days.len() / 10).max(1);
    // Both panels share the days' axis and its labels.
    let day_label = |x: &f64| {
        let i = *x as usize;
        match days.get(i) {
            Some(d) if i % label_every == 0 => d.date.format("%m-%d").to_string(),
            _ => String::new(),
        }
    };
    png(|root| {
        let (left, right) = root.split_horizontally((WIDTH as f64 * 0.6) as u32);
        let mut sla = ChartBuilder::on(&left)
            .caption(
                format!("Answered within target, by day — {}", data.time_zone),
                ("sans-serif", 16),
            )
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..n, 0f64..105f64)
            .map_err(err)?;
        sla.configure_mesh()
            .disable_x_mesh()
            .x_labels(days.len().min(12) + 1)
            .x_label_formatter(&day_label)
            .y_desc("% of answered")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        sla.draw_series(days.iter().enumerate().filter_map(|(i, d)| {
            d.sla_percent.map(|p| {
                let x = i as f64;
                Rectangle::new([(x + 0.15, 0.0), (x + 0.85, p)], GREEN.filled())
            })
        }))
        .map_err(err)?;
        let csat: Vec<(f64, f64)> = days
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.csat.map(|c| (i as f64 + 0.5, c)))
            .collect();
        let mut panel = ChartBuilder::on(&right)
            .caption("CSAT by day", ("sans-serif", 16))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..n, 0f64..5.5f64)
            .map_err(err)?;
        panel
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(days.len().min(12) + 1)
            .x_label_formatter(&day_label)
            .y_desc("mean score (1-5)")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        if csat.is_empty() {
            panel
                .draw_series(std::iter::once(Text::new(
                    "no survey answers yet",
                    (n * 0.2, 2.75),
                    ("sans-serif", 18).into_font().color(&BLACK),
                )))
                .map_err(err)?;
        } else {
            panel
                .draw_series(LineSeries::new(csat.clone(), SKY.stroke_width(2)))
                .map_err(err)?;
            panel
                .draw_series(csat.into_iter().map(|p| Circle::new(p, 4, SKY.filled())))
                .map_err(err)?;
        }
        right
            .draw_text(
                &format!(
                    "generated {}",
                    data.generated_at.format("%Y-%m-%d %H:%M UTC")
                ),
                &("sans-serif", 12).into_font().color(&BLACK),
                (15, HEIGHT as i32 - 18),
            )
            .map_err(err)?;
        Ok(())
    })
}
