//! The operator's configuration: flags and environment variables of `ots-operator run`.

use crate::ots::{ApiVersion, Credentials, SecretString};
use crate::telemetry::LogFormat;
use std::net::SocketAddr;
use std::time::Duration;
use url::Url;

/// The official Onetime Secret hosts, allowed as `spec.server.url` by default.
pub const OFFICIAL_HOSTS: [&str; 6] = [
    "https://onetimesecret.com",
    "https://us.onetimesecret.com",
    "https://eu.onetimesecret.com",
    "https://ca.onetimesecret.com",
    "https://uk.onetimesecret.com",
    "https://nz.onetimesecret.com",
];

/// Flags of `ots-operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Base URL of the default Onetime Secret server.
    #[arg(long, env = "OTS_URL", default_value = "https://onetimesecret.com")]
    pub ots_url: Url,

    /// API version to use: auto (v2 when the server offers it, else v1), v1 or v2.
    #[arg(long, env = "OTS_API", default_value = "auto")]
    pub ots_api: ApiVersion,

    /// Account email for the default server (anonymous without it).
    #[arg(long = "ots-username", env = "OTS_USERNAME", hide_env_values = true)]
    pub ots_username: Option<String>,

    /// API token for the default server. Prefer the environment variable to the flag.
    #[arg(long = "ots-api-token", env = "OTS_API_TOKEN", hide_env_values = true)]
    pub ots_api_token: Option<SecretString>,

    /// Watch only this namespace (repeatable; comma-separated in the environment). Default: all.
    #[arg(
        long = "namespace",
        env = "OTS_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Elect a leader through a Lease so that only one replica reconciles.
    #[arg(long)]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease (default: the pod's namespace, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_elect_namespace: Option<String>,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "ots-operator-leader")]
    pub leader_elect_lease: String,

    /// This replica's identity in the Lease (default: $POD_NAME, else the host name, plus a
    /// random suffix so a restarted process never mistakes its predecessor's lease for its own).
    #[arg(long)]
    pub leader_elect_identity: Option<String>,

    /// How long a leader's Lease lasts without renewal.
    #[arg(long, default_value = "15s", value_parser = humantime_duration)]
    pub leader_elect_lease_duration: Duration,

    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// A server URL that `spec.server.url` may name (repeatable; comma-separated in the
    /// environment). Default: --ots-url and the official onetimesecret.com hosts.
    #[arg(
        long = "allow-server-url",
        env = "OTS_ALLOWED_SERVER_URLS",
        value_delimiter = ','
    )]
    pub allow_server_urls: Vec<Url>,

    /// Requests per second the operator sends to Onetime Secret servers, all resources together.
    #[arg(long, default_value_t = 2.0)]
    pub ots_rate: f64,

    /// Requests the operator may send at once after a quiet period.
    #[arg(long, default_value_t = 10)]
    pub ots_burst: u32,

    /// Onetime Secret requests in flight at most.
    #[arg(long, default_value_t = 8)]
    pub ots_max_in_flight: usize,

    /// Timeout of one request to a Onetime Secret server.
    #[arg(long, default_value = "15s", value_parser = humantime_duration)]
    pub ots_timeout: Duration,

    /// First interval between checks of a live link's state; it doubles up to --refresh-max.
    #[arg(long, default_value = "30s", value_parser = humantime_duration)]
    pub refresh_min: Duration,

    /// Longest interval between checks of a live link's state.
    #[arg(long, default_value = "15m", value_parser = humantime_duration)]
    pub refresh_max: Duration,

    /// How long a deletion waits for a burn that keeps failing before it lets the resource go.
    #[arg(long, default_value = "5m", value_parser = humantime_duration)]
    pub burn_timeout: Duration,

    /// Resources reconciled at once, all namespaces together. Slots go to deletions first, then
    /// to the namespaces in turn.
    #[arg(long, default_value_t = 32)]
    pub concurrency: u16,

    /// Resources of one namespace reconciled at once (default: half of --concurrency), so that
    /// one namespace's backlog (or a server that holds its calls back) never takes every slot.
    #[arg(long)]
    pub concurrency_per_namespace: Option<u16>,

    /// Namespace where the operator keeps one record Secret per share (the metadata key and
    /// what a burn needs). Default: the pod's namespace, else "default". Only the operator
    /// should be able to read it.
    #[arg(long, env = "POD_NAMESPACE")]
    pub state_namespace: Option<String>,

    /// Set when the `ots-operator-secret-access` admission policy checks that every share's
    /// creator may read the Secrets it names; then status messages may describe those Secrets.
    /// Without it, messages about a referenced Secret say only that it cannot be shared.
    #[arg(long, env = "OTS_ADMISSION_GUARD")]
    pub admission_guard: bool,

    /// A PEM file of CA certificates to trust for Onetime Secret servers, besides the system's
    /// (a self-hosted server behind a private CA). The chart's `caBundle` value mounts one.
    #[arg(long, env = "OTS_CA_FILE")]
    pub ots_ca_file: Option<std::path::PathBuf>,

    /// Burn live secrets of the operator's own account (default server and credentials) that no
    /// OneTimeShare recorded, after a grace period; and burn the one secret a share call without
    /// an answer left behind. Only for an account dedicated to this operator.
    #[arg(long, env = "OTS_SWEEP_ORPHANS")]
    pub sweep_orphans: bool,

    /// How often --sweep-orphans looks for unrecorded live secrets.
    #[arg(long, default_value = "5m", value_parser = humantime_duration)]
    pub sweep_interval: Duration,

    /// How old an unrecorded live secret must be before --sweep-orphans burns it (a share's
    /// answer may still be on its way to its record).
    #[arg(long, default_value = "10m", value_parser = humantime_duration)]
    pub sweep_grace: Duration,

    /// Live links per Secret at most (0: no limit). A share over the limit waits with reason
    /// TooManyShares until another link of the same Secret is received, expires or is deleted.
    #[arg(long, default_value_t = 0)]
    pub max_live_shares_per_secret: u32,

    /// Reissues (new `ots.dev/reshare` values) one share may make per rolling hour (1 to
    /// 1000). A reissue over the limit waits with reason ReissueRefused until the oldest of the
    /// hour's reissues is an hour old, so a loop that rewrites the annotation cannot turn the
    /// operator into a burn-and-share loop against the server.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_reissues_per_hour: u32,

    /// Largest value, in bytes, the operator sends to Onetime Secret servers (checked before
    /// sharing). The default is the official servers' limit; raise it for a self-hosted server
    /// configured with a larger `SECRET_MAX_LENGTH`. The server's own refusal still wins.
    #[arg(long, env = "OTS_MAX_SECRET_BYTES", default_value_t = crate::ots::validate::MAX_SECRET_BYTES)]
    pub ots_max_secret_bytes: usize,

    /// An origin or host pattern notifications may be sent to (repeatable; comma-separated in
    /// the environment), e.g. https://hooks.slack.com or https://*.webhook.office.com. Nothing
    /// is allowed by default; https only, unless an entry says http:// explicitly. Loopback,
    /// link-local, private and shared ranges stay refused whatever this list says (unless
    /// --allow-notification-cidr names them), the apiserver's addresses always.
    #[arg(
        long = "allow-notification-url",
        env = "OTS_ALLOWED_NOTIFICATION_URLS",
        value_delimiter = ','
    )]
    pub allow_notification_urls: Vec<String>,

    /// A range notification endpoints may resolve to although a rule refuses it (repeatable;
    /// comma-separated in the environment), e.g. 10.20.0.0/16 for a receiver inside the
    /// cluster. The apiserver's own addresses stay refused even inside an allowed range.
    #[arg(
        long = "allow-notification-cidr",
        env = "OTS_ALLOWED_NOTIFICATION_CIDRS",
        value_delimiter = ','
    )]
    pub allow_notification_cidrs: Vec<ipnet::IpNet>,

    /// Notifications delivered at once (1 to 64). Deliveries have their own slots: a slow or
    /// dead endpoint never holds a reconcile, a share or a burn.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub notification_concurrency: u16,

    /// Delay before the first retry of an undelivered notification; each retry doubles it, up
    /// to --notification-retry-max (±20 % jitter). A `Retry-After` answer waits longer.
    #[arg(long, default_value = "1s", value_parser = humantime_duration)]
    pub notification_retry_min: Duration,

    /// Longest delay between retries of an undelivered notification.
    #[arg(long, default_value = "5m", value_parser = humantime_duration)]
    pub notification_retry_max: Duration,
}

/// Settings of the notification delivery worker, derived from [`RunArgs`].
#[derive(Debug, Clone)]
pub struct NotificationConfig {
    /// Origins notifications may be sent to (`--allow-notification-url`).
    pub allowlist: crate::notify::allowlist::Allowlist,
    /// Private ranges endpoints may resolve to (`--allow-notification-cidr`).
    pub allowed_cidrs: Vec<ipnet::IpNet>,
    /// Deliveries at once.
    pub concurrency: u16,
    /// First retry delay.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

/// Parses a duration flag with the `humantime` grammar: "90s", "15m", "2h", "1d", "500ms",
/// "1h30m". A number without a unit is refused, as is one too large for a duration.
pub fn humantime_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 30s, 15m, 2h or 1d ({e})"))
}

/// Settings the controller uses, derived from [`RunArgs`].
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The default server.
    pub ots_url: Url,
    /// API version choice.
    pub ots_api: ApiVersion,
    /// Credentials for the default server.
    pub credentials: Option<Credentials>,
    /// Normalized origins `spec.server.url` may name.
    pub allowed_servers: Vec<String>,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Link-state polling schedule.
    pub refresh_min: Duration,
    /// Longest polling interval.
    pub refresh_max: Duration,
    /// Bound on a failing burn at deletion.
    pub burn_timeout: Duration,
    /// OTS request timeout.
    pub ots_timeout: Duration,
    /// Reconciles at once, all namespaces together.
    pub concurrency: u16,
    /// Reconciles of one namespace at once (at most `concurrency`).
    pub concurrency_per_namespace: u16,
    /// Namespace of the operator's share records.
    pub state_namespace: String,
    /// Whether admission checked that creators may read the Secrets they name.
    pub admission_guard: bool,
    /// Live links per Secret at most; 0 means no limit.
    pub max_live_shares_per_secret: u32,
    /// Reissues per share per rolling hour at most.
    pub max_reissues_per_hour: u32,
    /// Whether the default account is dedicated to the operator (orphans may be burned).
    pub sweep_orphans: bool,
    /// CA certificates trusted for OTS servers besides the system's (`--ots-ca-file`).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// How often the orphan sweep runs.
    pub sweep_interval: Duration,
    /// Age below which an unrecorded live secret is left alone.
    pub sweep_grace: Duration,
    /// Largest value sent to a server, in bytes (`--ots-max-secret-bytes`).
    pub max_secret_bytes: usize,
}

impl RunArgs {
    /// The controller's settings.
    pub fn controller_config(&self) -> Result<ControllerConfig, String> {
        let credentials = match (&self.ots_username, &self.ots_api_token) {
            (Some(user), Some(token)) if !user.is_empty() => {
                Some(Credentials::new(user.clone(), token.clone()))
            }
            (None, None) => None,
            (Some(u), None) if u.is_empty() => None,
            _ => return Err("set both OTS_USERNAME and OTS_API_TOKEN, or neither".into()),
        };
        let mut allowed: Vec<String> = if self.allow_server_urls.is_empty() {
            OFFICIAL_HOSTS.iter().map(|s| (*s).to_owned()).collect()
        } else {
            self.allow_server_urls.iter().map(origin).collect()
        };
        allowed.push(origin(&self.ots_url));
        allowed.sort();
        allowed.dedup();
        if self.refresh_min.is_zero() || self.refresh_max < self.refresh_min {
            return Err("--refresh-min must be positive and at most --refresh-max".into());
        }
        if self.ots_max_secret_bytes == 0 {
            return Err("--ots-max-secret-bytes must be positive".into());
        }
        if self.concurrency == 0 || self.concurrency_per_namespace == Some(0) {
            return Err("--concurrency and --concurrency-per-namespace must be at least 1".into());
        }
        Ok(ControllerConfig {
            ots_url: self.ots_url.clone(),
            ots_api: self.ots_api,
            credentials,
            allowed_servers: allowed,
            namespaces: self
                .namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
            refresh_min: self.refresh_min,
            refresh_max: self.refresh_max,
            burn_timeout: self.burn_timeout,
            ots_timeout: self.ots_timeout,
            concurrency: self.concurrency,
            concurrency_per_namespace: self
                .concurrency_per_namespace
                .unwrap_or((self.concurrency / 2).max(1))
                .min(self.concurrency),
            state_namespace: self
                .state_namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(pod_namespace),
            admission_guard: self.admission_guard,
            max_live_shares_per_secret: self.max_live_shares_per_secret,
            max_reissues_per_hour: self.max_reissues_per_hour,
            sweep_orphans: self.sweep_orphans,
            extra_roots: match &self.ots_ca_file {
                Some(path) => read_ca_file(path)?,
                None => Vec::new(),
            },
            sweep_interval: self.sweep_interval,
            sweep_grace: self.sweep_grace,
            max_secret_bytes: self.ots_max_secret_bytes,
        })
    }
}

impl RunArgs {
    /// The delivery worker's settings; an unreadable --allow-notification-url entry is the error.
    pub fn notification_config(&self) -> Result<NotificationConfig, String> {
        let allowlist = crate::notify::allowlist::Allowlist::parse(&self.allow_notification_urls)
            .map_err(|e| format!("--allow-notification-url: {e}"))?;
        if self.notification_retry_min.is_zero()
            || self.notification_retry_max < self.notification_retry_min
        {
            return Err(
                "--notification-retry-min must be positive and at most --notification-retry-max"
                    .into(),
            );
        }
        Ok(NotificationConfig {
            allowlist,
            allowed_cidrs: self.allow_notification_cidrs.clone(),
            concurrency: self.notification_concurrency,
            retry_min: self.notification_retry_min,
            retry_max: self.notification_retry_max,
        })
    }
}

/// The certificates of a PEM file, or a message saying why there are none.
fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("--ots-ca-file {shown}: {e}"))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--ots-ca-file {shown}: not PEM certificates ({e})"))?;
    if certs.is_empty() {
        return Err(format!("--ots-ca-file {shown}: no certificate in it"));
    }
    Ok(certs)
}

/// The namespace of the pod this process runs in (from its ServiceAccount mount), else "default".
fn pod_namespace() -> String {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// `scheme://host[:port]` of a URL, lower case, without path: what the allowlist compares.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn defaults_allow_the_official_hosts_and_the_default_server() {
        let cli = Cli::try_parse_from(["x", "--ots-url", "http://127.0.0.1:9000/"]).unwrap();
        let cfg = cli.run.controller_config().unwrap();
        assert!(
            cfg.allowed_servers
                .contains(&"https://eu.onetimesecret.com".to_owned())
        );
        assert!(
            cfg.allowed_servers
                .contains(&"http://127.0.0.1:9000".to_owned())
        );
        assert!(!cfg.allowed_servers.contains(&"http://10.0.0.1".to_owned()));
    }

    #[test]
    fn an_explicit_allowlist_replaces_the_official_hosts() {
        let cli = Cli::try_parse_from([
            "x",
            "--allow-server-url",
            "https://ots.internal.example",
            "--allow-server-url",
            "HTTPS://Other.Example:8443/ignored/path",
        ])
        .unwrap();
        let cfg = cli.run.controller_config().unwrap();
        assert_eq!(
            cfg.allowed_servers,
            vec![
                "https://onetimesecret.com",
                "https://other.example:8443",
                "https://ots.internal.example"
            ]
        );
    }

    #[test]
    fn notifications_allow_nothing_by_default_and_deliver_four_at_once() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let cfg = cli.run.notification_config().unwrap();
        assert_eq!(cfg.concurrency, 4);
        assert!(cfg.allowed_cidrs.is_empty());
        let url = url::Url::parse("https://hooks.slack.com/services/T/B/x").unwrap();
        assert!(cfg.allowlist.check(&url).is_err());
    }

    #[test]
    fn notification_flags_are_read_and_a_bad_entry_is_refused() {
        let cli = Cli::try_parse_from([
            "x",
            "--allow-notification-url",
            "https://hooks.slack.com",
            "--allow-notification-cidr",
            "10.20.0.0/16",
            "--notification-concurrency",
            "2",
        ])
        .unwrap();
        let cfg = cli.run.notification_config().unwrap();
        assert_eq!(cfg.concurrency, 2);
        assert_eq!(
            cfg.allowed_cidrs,
            ["10.20.0.0/16".parse::<ipnet::IpNet>().unwrap()]
        );
        let url = url::Url::parse("https://hooks.slack.com/services/T/B/x").unwrap();
        assert!(cfg.allowlist.check(&url).is_ok());

        let cli =
            Cli::try_parse_from(["x", "--allow-notification-url", "ftp://x.example"]).unwrap();
        assert!(cli.run.notification_config().is_err());
        assert!(Cli::try_parse_from(["x", "--allow-notification-cidr", "not-a-cidr"]).is_err());
        assert!(Cli::try_parse_from(["x", "--notification-concurrency", "0"]).is_err());
    }

    #[test]
    fn the_secret_size_limit_defaults_to_ten_thousand_bytes_and_can_be_raised() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(
            cli.run.controller_config().unwrap().max_secret_bytes,
            10_000
        );
        let cli = Cli::try_parse_from(["x", "--ots-max-secret-bytes", "100000"]).unwrap();
        assert_eq!(
            cli.run.controller_config().unwrap().max_secret_bytes,
            100_000
        );
        let cli = Cli::try_parse_from(["x", "--ots-max-secret-bytes", "0"]).unwrap();
        assert!(cli.run.controller_config().is_err());
    }

    #[test]
    fn one_namespace_gets_half_the_reconcile_slots_unless_told_otherwise() {
        let config = |args: &[&str]| {
            let mut argv = vec!["x"];
            argv.extend(args);
            Cli::try_parse_from(argv).unwrap().run.controller_config()
        };
        let default = config(&[]).unwrap();
        assert_eq!(
            (default.concurrency, default.concurrency_per_namespace),
            (32, 16)
        );
        let one = config(&["--concurrency", "1"]).unwrap();
        assert_eq!(one.concurrency_per_namespace, 1);
        let set = config(&["--concurrency", "8", "--concurrency-per-namespace", "3"]).unwrap();
        assert_eq!(set.concurrency_per_namespace, 3);
        let capped = config(&["--concurrency", "8", "--concurrency-per-namespace", "20"]).unwrap();
        assert_eq!(capped.concurrency_per_namespace, 8);
        assert!(config(&["--concurrency", "0"]).is_err());
        assert!(config(&["--concurrency-per-namespace", "0"]).is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(humantime_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(humantime_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(humantime_duration("15m"), Ok(Duration::from_secs(900)));
        assert!(humantime_duration("15").is_err());
        assert!(humantime_duration("x").is_err());
    }

    #[test]
    fn every_duration_flag_value_the_docs_and_chart_use_still_parses() {
        for (text, secs) in [
            ("15s", 15),
            ("30s", 30),
            ("5m", 300),
            ("10m", 600),
            ("15m", 900),
            ("1h", 3600),
            ("2h", 7200),
        ] {
            assert_eq!(
                humantime_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        // Days and compound values, which the old grammar lacked.
        assert_eq!(humantime_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(humantime_duration("1h30m"), Ok(Duration::from_secs(5_400)));
    }

    #[test]
    fn a_duration_too_large_to_hold_is_refused_not_wrapped() {
        let error = humantime_duration("99999999999999999999h").unwrap_err();
        assert!(error.contains("99999999999999999999h"), "{error}");
        assert!(humantime_duration("9999999999999999h").is_err());
    }
}
