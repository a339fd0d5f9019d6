//! Log setup: `tracing` events as text or JSON lines on stderr, filtered by `RUST_LOG`.
//!
//! Logs go to stderr so that `ots-operator crd > crd.yaml` stays clean; Kubernetes collects both streams.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` holds a directive that does not parse.
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// A global subscriber was installed before (a second `init` in the same process).
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Parses a `RUST_LOG`-style filter; empty or absent means `info`.
pub fn filter(spec: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let builder = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
    Ok(builder.parse(spec.unwrap_or_default())?)
}

/// Installs the global subscriber with the filter from `RUST_LOG` (default `info`).
///
/// Calling it again returns [`TelemetryError::AlreadyInitialised`] instead of panicking, so tests may
/// call it freely.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let spec = std::env::var("RUST_LOG").ok();
    let filter = filter(spec.as_deref())?;
    let ansi = std::io::stderr().is_terminal();
    tracing::subscriber::set_global_default(subscriber(format, filter, std::io::stderr, ansi))
        .map_err(|_| TelemetryError::AlreadyInitialised)
}

fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn capture(format: LogFormat, spec: Option<&str>, emit: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let sub = subscriber(format, filter(spec).unwrap(), move || writer.clone(), false);
        tracing::subscriber::with_default(sub, emit);
        out.text()
    }

    #[test]
    fn json_format_writes_one_json_object_per_event_with_its_fields() {
        let text = capture(LogFormat::Json, None, || {
            tracing::info!(object = "team-a/share-1", reason = "Shared", "reconciled");
        });
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "reconciled");
        assert_eq!(line["object"], "team-a/share-1");
        assert_eq!(line["reason"], "Shared");
    }

    #[test]
    fn text_format_writes_plain_lines() {
        let text = capture(LogFormat::Text, None, || tracing::warn!("server slow"));
        assert!(text.contains("WARN"), "{text}");
        assert!(text.contains("server slow"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }

    #[test]
    fn default_filter_is_info() {
        let text = capture(LogFormat::Text, None, || {
            tracing::debug!("hidden detail");
            tracing::info!("visible");
        });
        assert!(!text.contains("hidden detail"), "{text}");
        assert!(text.contains("visible"), "{text}");
    }

    #[test]
    fn rust_log_style_directives_select_targets_and_levels() {
        let text = capture(LogFormat::Text, Some("warn,chatty=debug"), || {
            tracing::info!(target: "quiet", "quiet info");
            tracing::debug!(target: "chatty", "chatty debug");
        });
        assert!(!text.contains("quiet info"), "{text}");
        assert!(text.contains("chatty debug"), "{text}");
    }

    #[test]
    fn an_invalid_filter_is_an_error() {
        assert!(matches!(
            filter(Some("foo=notalevel")),
            Err(TelemetryError::Filter(_))
        ));
    }

    #[test]
    fn init_twice_reports_instead_of_panicking() {
        // The first call may fail too if another test installed a subscriber; either way no panic and
        // the second call cannot succeed.
        let _ = init(LogFormat::Text);
        assert!(matches!(
            init(LogFormat::Json),
            Err(TelemetryError::AlreadyInitialised)
        ));
    }
}
