//! Progress bars on stderr (indicatif) for the native face: one bar per long
//! step the library reports ([`holdfast::progress`]), with bytes, rate and
//! time left. Drawn when stderr is a terminal (and `TERM` is not `dumb`),
//! or always with `--progress` (as ANSI lines to whatever stderr is);
//! never with `--no-progress`, nor in the engine-backup face.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use holdfast::progress::{ProgressBar, ProgressSink, Unit};
use indicatif::{MultiProgress, ProgressDrawTarget, ProgressStyle};

/// Whether bars are drawn: `--progress`, or stderr is a terminal and
/// `--no-progress` was not given.
pub fn wanted(progress: bool, no_progress: bool) -> bool {
    progress || (!no_progress && std::io::stderr().is_terminal())
}

/// The bars of one run.
pub struct TerminalBars {
    multi: MultiProgress,
}

impl TerminalBars {
    pub fn new() -> Arc<TerminalBars> {
        // Redrawn at most 5 times a second; on a stderr that is no terminal
        // (--progress) as the same ANSI lines, 80 columns wide.
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(5)
        } else {
            ProgressDrawTarget::term_like_with_hz(Box::new(AnsiStderr), 5)
        };
        Arc::new(TerminalBars {
            multi: MultiProgress::with_draw_target(target),
        })
    }
}

/// stderr as an 80-column ANSI terminal, whatever it is.
#[derive(Debug)]
struct AnsiStderr;

impl indicatif::TermLike for AnsiStderr {
    fn width(&self) -> u16 {
        80
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}A"))
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}B"))
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}C"))
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}D"))
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        use std::io::Write;
        std::io::stderr().write_all(s.as_bytes())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.write_str("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        use std::io::Write;
        std::io::stderr().flush()
    }
}

impl ProgressSink for TerminalBars {
    fn begin(&self, label: &str, total: Option<u64>, unit: Unit) -> Box<dyn ProgressBar> {
        let bar = match (total.filter(|t| *t > 0), unit) {
            (Some(total), Unit::Entries) => indicatif::ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg:24!} [{bar:30}] {pos:>6} of {len:<6} entries {elapsed:>5}  {eta} left",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
            (Some(total), Unit::Items) => indicatif::ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg:24!} [{bar:30}] {pos:>6} of {len:<6} {elapsed:>5}  {eta} left",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
            (Some(total), Unit::Bytes) => indicatif::ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg:24!} [{bar:30}] {bytes:>10} of ~{total_bytes:<10} {bytes_per_sec:>12}  {eta} left",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
            (None, _) => indicatif::ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg:24!} {spinner} {bytes:>10} {bytes_per_sec:>12}")
                    .expect("a valid template"),
            ),
        };
        let bar = self.multi.add(bar.with_message(label.to_string()));
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(Bar(bar))
    }

    fn print(&self, line: &str, stderr: bool) {
        // Above the bars: they are cleared, the line printed, and redrawn.
        self.multi.suspend(|| {
            if stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        });
    }
}

struct Bar(indicatif::ProgressBar);

impl ProgressBar for Bar {
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    fn set_length(&self, total: u64) {
        self.0.set_length(total);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
