//! The page every report is: one self-contained HTML document, its style inline, its charts
//! inline SVG, no script and nothing fetched. Text enters the page only through this module's
//! methods, which escape it (UETRs, names, reasons and paths come from data); markup enters it
//! only as an [`Svg`] the chart module drew.

use std::fmt::Write as _;

use html_escape::encode_text;

use super::chart::Svg;

/// The style of every report: readable on screen and in print, no web font.
const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif;\
margin:0 auto;max-width:1200px;padding:24px 32px;color:#1d2330;background:#fff;line-height:1.4}\
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;\
border-bottom:1px solid #d5dae3;padding-bottom:4px}\
p.sub{color:#5a6475;margin:0 0 16px}\
.banner{padding:10px 14px;border-radius:6px;font-weight:600;margin:12px 0}\
.banner.pass{background:#e3f4e8;color:#135c2a}.banner.fail{background:#fbe4e4;color:#8a1c1c}\
.banner.note{background:#eef1f6;color:#2a3550}\
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}\
.tile{border:1px solid #d5dae3;border-radius:6px;padding:10px 16px;min-width:150px}\
.tile .value{display:block;font-size:1.5em;font-weight:600}\
.tile .label{display:block;color:#5a6475;font-size:.9em}\
table{border-collapse:collapse;margin:8px 0;font-size:.92em}\
th,td{border-bottom:1px solid #e4e8ef;padding:4px 10px;text-align:left;vertical-align:top}\
th{background:#f4f6f9}table.facts th{background:none;color:#5a6475;font-weight:500}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
code{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:.92em;word-break:break-all}\
.verdict{font-weight:600}.verdict.pass{color:#1a7f37}.verdict.fail{color:#b42318}\
.verdict.note{color:#44506a}\
figure{margin:12px 0}figure svg{max-width:100%;height:auto}\
figcaption{color:#5a6475;font-size:.9em}";

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing found.
    Pass,
    /// Something found: the report lists it.
    Fail,
    /// Neither: information the reader should see (not run, in doubt, not required).
    Note,
}

impl Verdict {
    /// A check passes when nothing was found.
    pub(crate) fn of(found: bool) -> Self {
        if found { Self::Fail } else { Self::Pass }
    }

    fn class(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Note => "note",
        }
    }

    /// The word the page shows.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::Note => "note",
        }
    }
}

/// One cell of a table.
pub(crate) enum Cell {
    /// Prose.
    Text(String),
    /// An identifier (UETR, key, path, hash): monospace.
    Code(String),
    /// A figure: right-aligned.
    Number(String),
    /// A check's verdict.
    Verdict(Verdict),
}

/// A report being written.
pub(crate) struct Page {
    html: String,
}

impl Page {
    /// Starts a report titled `title`; `subtitle` says what it is of and when it was made.
    pub(crate) fn new(title: &str, subtitle: &str) -> Self {
        let mut html = String::with_capacity(64 << 10);
        html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        // Nothing may be fetched or run, whatever a text in the page says: the file is read
        // offline and archived.
        html.push_str(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'\">\n",
        );
        html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        let _ = writeln!(html, "<title>{}</title>", encode_text(title));
        let _ = writeln!(html, "<style>{STYLE}</style>\n</head>\n<body>");
        let _ = writeln!(html, "<h1>{}</h1>", encode_text(title));
        let _ = writeln!(html, "<p class=\"sub\">{}</p>", encode_text(subtitle));
        Self { html }
    }

    /// The report's verdict in one line, coloured by `verdict`.
    pub(crate) fn banner(&mut self, verdict: Verdict, text: &str) {
        let _ = writeln!(
            self.html,
            "<div class=\"banner {}\" id=\"verdict\">{}</div>",
            verdict.class(),
            encode_text(text)
        );
    }

    /// A section heading.
    pub(crate) fn heading(&mut self, text: &str) {
        let _ = writeln!(self.html, "<h2>{}</h2>", encode_text(text));
    }

    /// A paragraph of prose.
    pub(crate) fn paragraph(&mut self, text: &str) {
        let _ = writeln!(self.html, "<p>{}</p>", encode_text(text));
    }

    /// The key figures as tiles: (value, what it is).
    pub(crate) fn tiles(&mut self, tiles: &[(String, &str)]) {
        self.html.push_str("<div class=\"tiles\">\n");
        for (value, label) in tiles {
            let _ = writeln!(
                self.html,
                "<div class=\"tile\"><span class=\"value\">{}</span><span class=\"label\">{}</span></div>",
                encode_text(value),
                encode_text(label)
            );
        }
        self.html.push_str("</div>\n");
    }

    /// Name–value rows (what was audited, with what, on which machine).
    pub(crate) fn facts(&mut self, rows: Vec<(&str, Cell)>) {
        self.html.push_str("<table class=\"facts\">\n");
        for (name, value) in rows {
            let _ = write!(self.html, "<tr><th>{}</th>", encode_text(name));
            self.cell(&value);
            self.html.push_str("</tr>\n");
        }
        self.html.push_str("</table>\n");
    }

    /// A table with a header row.
    pub(crate) fn table(&mut self, header: &[&str], rows: Vec<Vec<Cell>>) {
        self.html.push_str("<table>\n<tr>");
        for name in header {
            let _ = write!(self.html, "<th>{}</th>", encode_text(name));
        }
        self.html.push_str("</tr>\n");
        for row in rows {
            self.html.push_str("<tr>");
            for cell in &row {
                self.cell(cell);
            }
            self.html.push_str("</tr>\n");
        }
        self.html.push_str("</table>\n");
    }

    /// A chart and its caption.
    pub(crate) fn chart(&mut self, svg: &Svg, caption: &str) {
        self.html.push_str("<figure>\n");
        self.html.push_str(svg.markup());
        let _ = writeln!(
            self.html,
            "\n<figcaption>{}</figcaption>\n</figure>",
            encode_text(caption)
        );
    }

    /// The finished document.
    pub(crate) fn finish(mut self) -> String {
        self.html.push_str("</body>\n</html>\n");
        self.html
    }

    fn cell(&mut self, cell: &Cell) {
        let _ = match cell {
            Cell::Text(text) => write!(self.html, "<td>{}</td>", encode_text(text)),
            Cell::Code(text) => write!(self.html, "<td><code>{}</code></td>", encode_text(text)),
            Cell::Number(text) => write!(self.html, "<td class=\"num\">{}</td>", encode_text(text)),
            Cell::Verdict(verdict) => write!(
                self.html,
                "<td class=\"verdict {}\">{}</td>",
                verdict.class(),
                verdict.word()
            ),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert('x')</script> & \"quoted\"";

    #[test]
    fn every_text_is_escaped() {
        let mut page = Page::new(HOSTILE, HOSTILE);
        page.banner(Verdict::Fail, HOSTILE);
        page.heading(HOSTILE);
        page.paragraph(HOSTILE);
        page.tiles(&[(HOSTILE.to_owned(), HOSTILE)]);
        page.facts(vec![(HOSTILE, Cell::Code(HOSTILE.to_owned()))]);
        page.table(
            &[HOSTILE],
            vec![vec![
                Cell::Text(HOSTILE.to_owned()),
                Cell::Number(HOSTILE.to_owned()),
            ]],
        );
        let html = page.finish();
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; \"quoted\""));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.ends_with("</html>\n"));
    }

    #[test]
    fn the_page_fetches_and_runs_nothing() {
        let html = Page::new("t", "s").finish();
        assert!(html.contains("default-src 'none'"), "{html}");
        for forbidden in ["<script", "<link", "http://", "https://", "<img"] {
            assert!(!html.contains(forbidden), "{forbidden} in {html}");
        }
    }

    #[test]
    fn verdicts_are_words_and_classes() {
        let mut page = Page::new("t", "s");
        page.table(
            &["check", "verdict"],
            vec![
                vec![Cell::Text("a".into()), Cell::Verdict(Verdict::of(false))],
                vec![Cell::Text("b".into()), Cell::Verdict(Verdict::of(true))],
            ],
        );
        let html = page.finish();
        assert!(
            html.contains("<td class=\"verdict pass\">pass</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"verdict fail\">FAIL</td>"),
            "{html}"
        );
    }
}
