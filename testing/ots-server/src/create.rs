//! Creating secrets: parameter rules shared by v1 share/generate and v2 conceal/generate.

use rand::Rng;
use secrecy::SecretString;

use crate::api::Operation;
use crate::auth::Caller;
use crate::config::{Config, DEFAULT_TTL, FREE_TTL, MIN_TTL, Plan, Profile, SECRET_MAX_BYTES};
use crate::store::{Kind, NewSecret};

/// Shortest passphrase accepted.
pub(crate) const PASSPHRASE_MIN: usize = 4;
/// Longest passphrase accepted.
pub(crate) const PASSPHRASE_MAX: usize = 128;
/// Default length of a generated value.
pub(crate) const GENERATE_DEFAULT_LENGTH: i64 = 12;
/// Longest generated value.
pub(crate) const GENERATE_MAX_LENGTH: i64 = 128;
/// v1's absolute ttl ceiling (30 days).
pub(crate) const V1_MAX_TTL: u64 = 2_592_000;

/// What a create operation makes: `Generate` generates the value, every other conceals it.
pub(crate) fn kind_of(op: Operation) -> Kind {
    if op == Operation::Generate {
        Kind::Generate
    } else {
        Kind::Conceal
    }
}

/// Raw create parameters, as read from either API version.
pub(crate) struct CreateInput {
    pub(crate) kind: Kind,
    pub(crate) secret: Option<String>,
    pub(crate) passphrase: Option<String>,
    /// `None`: missing; `Some(raw)`: given (even empty).
    pub(crate) ttl: Option<String>,
    pub(crate) length: Option<String>,
    pub(crate) recipients: Vec<String>,
    pub(crate) share_domain: Option<String>,
}

/// How v2 answers a refused create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 422 form error.
    Form,
    /// 401 Unauthorized (recipient without an account).
    Unauthorized,
    /// 403 EntitlementRequired: ttl above the free tier on a plan without
    /// `extended_default_expiration` (current profile only).
    Entitlement,
    /// 403 `Forbidden` (`Onetime::Forbidden#to_h`, lib/onetime/errors.rb:266-272): a share
    /// domain the caller may not use; `error_type` carries its `error_key`.
    Forbidden,
}

/// A validation failure: the message the API shows and the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) message: String,
    /// The field named in v2's answer, if the server names one.
    pub(crate) field: Option<&'static str>,
    /// v2's `error_type` for this failure, when the server names one.
    pub(crate) error_type: Option<&'static str>,
    /// How v2 answers it.
    pub(crate) refusal: Refusal,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        message: message.into(),
        field: Some(field),
        error_type: None,
        refusal: Refusal::Form,
    }
}

/// Ruby's `String#to_i`: optional whitespace and sign, then leading digits; else 0.
pub(crate) fn ruby_to_i(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg { -n } else { n }
}

/// Clamps a requested ttl the way the server does: missing → default; present → its integer
/// value clamped to [60, cap] (so `""`, `"0"`, `"abc"` give 60).
pub(crate) fn clamp_ttl(raw: Option<&str>, cap: u64) -> u64 {
    let cap = cap.max(MIN_TTL);
    match raw {
        None => DEFAULT_TTL.clamp(MIN_TTL, cap),
        Some(s) => {
            let n = ruby_to_i(s);
            u64::try_from(n).unwrap_or(0).clamp(MIN_TTL, cap)
        }
    }
}

/// The ttl ceiling for this caller: anonymous callers get `ttl_max_anonymous`; accounts get
/// their plan's `secret_lifetime` (paid: `ttl_max_authenticated`, free: at most 14 days,
/// anonymous plan: `ttl_max_anonymous`). Current: `apps/api/v2/logic/secrets/
/// base_secret_action.rb:104-112` and `etc/examples/billing.example.yaml:225,280` (de53ff8f7);
/// v0.23.6: `lib/onetime/plan.rb:64-70` with `base_secret_action.rb:91-104`.
pub(crate) fn ttl_cap(config: &Config, caller: &Caller, v1: bool) -> u64 {
    let cap = match caller {
        Caller::Account(_) => match config.plan {
            Plan::Paid => config.ttl_max_authenticated,
            Plan::Free => config.ttl_max_authenticated.min(FREE_TTL),
            Plan::Anonymous => config.ttl_max_anonymous,
        },
        _ => config.ttl_max_anonymous,
    };
    if v1 { cap.min(V1_MAX_TTL) } else { cap }
}

/// v2 (current) refuses a ttl above the free tier from an account whose plan lacks
/// `extended_default_expiration`, before clamping: `apps/api/v2/logic/secrets/
/// base_secret_action.rb:120-126` raising through `lib/onetime/logic/base.rb:271-286`
/// (de53ff8f7). Anonymous callers are clamped silently (same file, 174-182).
fn entitlement_gate(
    raw_ttl: Option<&str>,
    caller: &Caller,
    config: &Config,
) -> Result<(), Invalid> {
    if config.profile != Profile::Current
        || !matches!(caller, Caller::Account(_))
        || config.plan.extended_expiration()
    {
        return Ok(());
    }
    let asked = raw_ttl.map_or(i64::try_from(DEFAULT_TTL).unwrap_or(i64::MAX), ruby_to_i);
    if asked > i64::try_from(FREE_TTL).unwrap_or(i64::MAX) {
        // `Onetime::EntitlementRequired` default message (lib/onetime/errors.rb:288); its
        // handler (lib/onetime/application/otto_hooks.rb:87-89) does not localize it.
        return Err(Invalid {
            message: "Feature requires extended default expiration entitlement".to_owned(),
            field: None,
            error_type: Some("EntitlementRequired"),
            refusal: Refusal::Entitlement,
        });
    }
    Ok(())
}

/// Plan size of a v0.23/v0.20 secret: longer values were silently truncated to it
/// (v0.23.6 `lib/onetime/plan.rb:68-70`, `size:`).
fn legacy_plan_size(config: &Config, caller: &Caller) -> usize {
    match (caller, config.plan) {
        (Caller::Account(_), Plan::Paid) => 10_000_000,
        (Caller::Account(_), Plan::Free) => 1_000_000,
        _ => 100_000,
    }
}

/// A loose check of an email address (`local@domain.tld`, no spaces).
pub(crate) fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        && !domain.contains('@')
}

/// Masks an address for display: `al*****@example.com`.
pub(crate) fn mask_email(s: &str) -> String {
    match s.split_once('@') {
        Some((local, domain)) => {
            let head: String = local.chars().take(2).collect();
            format!("{head}*****@{domain}")
        }
        None => "*****".to_owned(),
    }
}

fn generate_value(length: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!@#$%^&*-_=+";
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// Validates create parameters in the server's order and builds the secret to store.
pub(crate) fn build(
    input: CreateInput,
    caller: &Caller,
    config: &Config,
    public_host: &str,
    v1: bool,
) -> Result<NewSecret, Invalid> {
    if !v1 {
        entitlement_gate(input.ttl.as_deref(), caller, config)?;
    }
    let ttl = clamp_ttl(input.ttl.as_deref(), ttl_cap(config, caller, v1));
    let value = match input.kind {
        Kind::Conceal => input.secret.unwrap_or_default(),
        Kind::Generate => {
            let length = input
                .length
                .as_deref()
                .map_or(GENERATE_DEFAULT_LENGTH, ruby_to_i);
            if length > GENERATE_MAX_LENGTH {
                return Err(invalid(
                    "length",
                    format!(
                        "Generated password length must be no more than {GENERATE_MAX_LENGTH} characters"
                    ),
                ));
            }
            generate_value(usize::try_from(length).unwrap_or(0))
        }
    };
    let legacy_v2 = !v1 && config.profile.is_legacy();
    let value = if legacy_v2 {
        // v0.23 and older truncated instead of refusing (`shared/ots-api.md` §5).
        value
            .chars()
            .take(legacy_plan_size(config, caller))
            .collect()
    } else {
        value
    };
    // v1: the constant `V1_MAX_SECRET_SIZE` (apps/api/v1/logic/secrets/base_secret_action.rb:63,
    // 263-268); v2: `SECRET_MAX_LENGTH` (lib/onetime/logic/base.rb:181-194), both in bytes.
    let max = if v1 {
        SECRET_MAX_BYTES
    } else {
        config.max_secret_bytes
    };
    let too_large = !legacy_v2 && value.len() > max;
    let size_error = || {
        if v1 {
            invalid(
                "secret",
                format!("Secret value exceeds the maximum size of {max} bytes"),
            )
        } else {
            invalid(
                "secret",
                format!("Secret content must be no more than {max} bytes long"),
            )
        }
    };
    // v1 checks the size first; v2 after everything else.
    if v1 && too_large {
        return Err(size_error());
    }
    let mut recipients: Vec<String> = Vec::new();
    for r in input.recipients {
        let r = r.trim().to_owned();
        if !r.is_empty() && !recipients.contains(&r) {
            recipients.push(r);
        }
    }
    if !recipients.is_empty() {
        if !matches!(caller, Caller::Account(_)) {
            return Err(Invalid {
                refusal: if v1 || config.profile.is_legacy() {
                    Refusal::Form
                } else {
                    Refusal::Unauthorized
                },
                ..invalid("recipient", "An account is required to send emails.")
            });
        }
        if let Some(bad) = recipients.iter().find(|r| !valid_email(r)) {
            return Err(Invalid {
                error_type: Some("invalid_email"),
                ..invalid("recipient", format!("Undeliverable email address: {bad}"))
            });
        }
    }
    // The site's own host is ignored as a share domain; anything else is kept as given.
    let share_domain = input
        .share_domain
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty() && !d.eq_ignore_ascii_case(public_host))
        .unwrap_or_default();
    if !v1 && config.profile == Profile::Current && !share_domain.is_empty() {
        share_domain_allowed(&share_domain, caller, config)?;
    }
    let passphrase = input.passphrase.filter(|p| !p.is_empty());
    if let Some(p) = &passphrase {
        let n = p.chars().count();
        if n < PASSPHRASE_MIN {
            // No field named upstream (apps/api/v2/logic/secrets/base_secret_action.rb:407).
            return Err(Invalid {
                field: None,
                ..invalid(
                    "passphrase",
                    format!("Passphrase must be at least {PASSPHRASE_MIN} characters long"),
                )
            });
        }
        if n > PASSPHRASE_MAX {
            // No field named upstream (base_secret_action.rb:413).
            return Err(Invalid {
                field: None,
                ..invalid(
                    "passphrase",
                    format!("Passphrase must be no more than {PASSPHRASE_MAX} characters long"),
                )
            });
        }
    }
    if input.kind == Kind::Conceal && value.is_empty() {
        return Err(Invalid {
            error_type: Some("missing"),
            ..invalid("secret", "You did not provide anything to share")
        });
    }
    if too_large {
        return Err(size_error());
    }
    Ok(NewSecret {
        value: SecretString::from(value),
        passphrase: passphrase.map(SecretString::from),
        ttl,
        owner: caller.email().map(str::to_owned),
        // Only the first recipient is emailed; the answer shows it masked.
        recipients: recipients.iter().take(1).map(|r| mask_email(r)).collect(),
        share_domain,
        kind: input.kind,
    })
}

/// Whether `caller` may put a link on `domain`, as v2 decides it
/// (`apps/api/v2/logic/secrets/base_secret_action.rb`, de53ff8f7): an anonymous caller on the
/// canonical host never (`validate_anonymous_share_domain`, :371-388), a domain no account
/// registered is a form error (`validate_domain_access`, :557), and one another account owns is
/// forbidden (`validate_domain_permissions`, :676-696).
fn share_domain_allowed(domain: &str, caller: &Caller, config: &Config) -> Result<(), Invalid> {
    let forbidden = |error_key: &'static str| Invalid {
        message: format!("You do not have permission to use domain: {domain}"),
        field: None,
        error_type: Some(error_key),
        refusal: Refusal::Forbidden,
    };
    let Some(email) = caller.email() else {
        return Err(forbidden(
            "api.secrets.errors.domain_permission_anonymous_cross_domain",
        ));
    };
    let Some(registered) = config
        .custom_domains
        .iter()
        .find(|d| d.domain.eq_ignore_ascii_case(domain))
    else {
        return Err(Invalid {
            message: format!("Unknown domain: {domain}"),
            field: None,
            error_type: None,
            refusal: Refusal::Form,
        });
    };
    if registered.owner != email {
        return Err(forbidden(
            "api.secrets.errors.domain_permission_authenticated_non_owner",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_to_i_reads_leading_integers() {
        assert_eq!(ruby_to_i("3600"), 3600);
        assert_eq!(ruby_to_i(" 42abc"), 42);
        assert_eq!(ruby_to_i("abc"), 0);
        assert_eq!(ruby_to_i(""), 0);
        assert_eq!(ruby_to_i("-5"), -5);
        assert_eq!(ruby_to_i("3600.9"), 3600);
        assert_eq!(ruby_to_i("99999999999999999999999"), i64::MAX);
    }

    #[test]
    fn ttl_clamps_into_range_and_defaults_when_missing() {
        assert_eq!(clamp_ttl(None, 604_800), 604_800);
        assert_eq!(clamp_ttl(None, 3600), 3600);
        for raw in ["", "0", "abc", "-1", "59"] {
            assert_eq!(clamp_ttl(Some(raw), 604_800), 60, "{raw:?}");
        }
        assert_eq!(clamp_ttl(Some("3600"), 604_800), 3600);
        assert_eq!(clamp_ttl(Some("99999999"), 604_800), 604_800);
    }

    #[test]
    fn only_the_owner_of_a_registered_domain_may_share_on_it() {
        let config = Config {
            custom_domains: vec![crate::config::CustomDomain::new(
                "secrets.example.com",
                "ops@example.com",
            )],
            ..Config::default()
        };
        let build_on = |domain: &str, caller: &Caller| {
            let input = CreateInput {
                kind: Kind::Conceal,
                secret: Some("value".into()),
                passphrase: None,
                ttl: None,
                length: None,
                recipients: Vec::new(),
                share_domain: Some(domain.into()),
            };
            build(input, caller, &config, "ots.example.com", false)
        };
        let owner = Caller::Account("ops@example.com".into());
        let other = Caller::Account("someone@example.com".into());
        let Ok(ok) = build_on("secrets.example.com", &owner) else {
            panic!("the owner may use its domain");
        };
        assert_eq!(ok.share_domain, "secrets.example.com");
        // The site's own host is no share domain at all, for anyone.
        let Ok(own_host) = build_on("ots.example.com", &Caller::Anonymous) else {
            panic!("the site's own host is ignored, not refused");
        };
        assert_eq!(own_host.share_domain, "");
        let Err(unknown) = build_on("nowhere.example.com", &owner) else {
            panic!("an unknown domain is refused");
        };
        assert_eq!(
            (unknown.refusal, unknown.message.as_str()),
            (Refusal::Form, "Unknown domain: nowhere.example.com")
        );
        for caller in [&other, &Caller::Anonymous] {
            let Err(refused) = build_on("secrets.example.com", caller) else {
                panic!("only the owner may use its domain");
            };
            assert_eq!(refused.refusal, Refusal::Forbidden);
            assert_eq!(
                refused.message,
                "You do not have permission to use domain: secrets.example.com"
            );
        }
    }

    #[test]
    fn emails_are_masked_and_checked() {
        assert_eq!(mask_email("alice@example.com"), "al*****@example.com");
        assert!(valid_email("a@b.co"));
        assert!(!valid_email("nope"));
        assert!(!valid_email("a@b"));
    }
}
