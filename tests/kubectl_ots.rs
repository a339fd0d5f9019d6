//! The `kubectl-ots` plugin against a real control plane, the real operator and the test server:
//! `share --wait` prints a link that reveals the value, `get`/`list`/`reissue`/`burn` do what they
//! say, and every subcommand fails clearly (message on stderr, non-zero exit) when it cannot.

mod support;

use serde_json::json;
use std::path::Path;
use std::process::Output;
use support::cluster::{self, kubeconfig_path};
use support::operator::*;
use support::world::World;

/// Runs `kubectl-ots ARGS` with the admin kubeconfig given by `--kubeconfig`.
async fn kubectl_ots(args: &[&str]) -> Output {
    kubectl_ots_with(kubeconfig_path(), args).await
}

async fn kubectl_ots_with(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ots"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run kubectl-ots")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failure with `code` whose stderr contains `needle`.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    assert!(
        stderr(out).contains(needle),
        "stderr lacks {needle:?}: {}",
        stderr(out)
    );
}

/// Asserts `out` succeeded and printed one line only, a link on `server_url`: all it printed,
/// and the link.
fn only_link(out: &Output, server_url: &str) -> (String, String) {
    assert_ok(out);
    let printed = stdout(out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "only the link is printed: {printed}");
    let link = lines[0].to_owned();
    assert!(link.starts_with(server_url), "{link}");
    (printed, link)
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

#[tokio::test]
async fn share_wait_prints_a_link_that_reveals_the_value_and_nothing_else() {
    let w = World::start("plugin-share").await;
    w.secret("db", &[("password", b"plugin-s3cret")]).await;

    let out = kubectl_ots(&[
        "-n", &w.ns, "share", "db", "--key", "password", "--ttl", "24h", "--name", "handoff",
        "--wait",
    ])
    .await;
    let (printed, link) = only_link(&out, &w.server.url());
    assert!(!stderr(&out).contains(&link), "the link is printed once");
    assert!(!printed.contains("plugin-s3cret") && !stderr(&out).contains("plugin-s3cret"));

    let share = w.shares().get("handoff").await.expect("get");
    assert_eq!(share.spec.ttl.as_deref(), Some("24h"));
    assert_eq!(share.spec.secret_ref.key.as_deref(), Some("password"));
    assert_eq!(
        w.reveal_link(&link, None).await.expect("reveal"),
        "plugin-s3cret"
    );

    // The same name again: a clear refusal, not an API dump.
    let again = kubectl_ots(&["-n", &w.ns, "share", "db", "--name", "handoff"]).await;
    assert_fails(&again, 1, "already exists");
}

#[tokio::test]
async fn share_with_a_passphrase_and_a_generated_name() {
    let w = World::start("plugin-passphrase").await;
    w.secret("db", &[("password", b"gated")]).await;
    w.secret("phrases", &[("db", b"open sesame")]).await;

    let out = kubectl_ots(&[
        "-n",
        &w.ns,
        "share",
        "db",
        "--key",
        "password",
        "--passphrase-from",
        "phrases/db",
        "--wait",
    ])
    .await;
    assert_ok(&out);
    let link = stdout(&out).trim().to_owned();
    assert!(!stdout(&out).contains("open sesame") && !stderr(&out).contains("open sesame"));
    assert!(w.reveal_link(&link, None).await.is_err());
    assert_eq!(
        w.reveal_link(&link, Some("open sesame"))
            .await
            .expect("reveal"),
        "gated"
    );
    let all = w.shares().list(&Default::default()).await.expect("list");
    assert_eq!(all.items.len(), 1);
    assert!(
        all.items[0]
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("db-")
    );
}

/// The namespace holds no OneTimeShare.
async fn assert_no_shares(client: &kube::Client, ns: &str) {
    let all = shares(client, ns)
        .list(&Default::default())
        .await
        .expect("list");
    assert!(all.items.is_empty(), "{:?}", all.items);
}

#[tokio::test]
async fn share_of_a_missing_secret_says_so_and_creates_nothing() {
    let (client, ns) = setup("plugin-missing-secret").await;
    let out = kubectl_ots(&["-n", &ns, "share", "nope", "--wait"]).await;
    assert_fails(&out, 1, &format!("Secret {ns}/nope does not exist"));
    create_secret(&client, &ns, "db", &[("password", b"x")]).await;
    let out = kubectl_ots(&["-n", &ns, "share", "db", "--passphrase-from", "gone/key"]).await;
    assert_fails(&out, 1, &format!("Secret {ns}/gone does not exist"));
    assert_no_shares(&client, &ns).await;
}

#[tokio::test]
async fn share_wait_times_out_clearly_without_an_operator() {
    let (client, ns) = setup("plugin-no-operator").await;
    install_crd();
    create_secret(&client, &ns, "db", &[("password", b"x")]).await;
    let out = kubectl_ots(&["-n", &ns, "share", "db", "--wait", "--timeout", "2s"]).await;
    assert_fails(&out, 1, "timed out after 2s waiting for the link");
    assert!(
        stderr(&out).contains("is the ots-operator running"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[tokio::test]
async fn get_and_list_show_state_expiry_and_opened_but_never_the_link() {
    let w = World::start("plugin-get").await;
    w.secret("db", &[("password", b"v")]).await;
    w.share("opened", json!({"secretRef": {"name": "db"}}))
        .await;
    w.share_key("waiting", "db", "password").await;
    let opened = w.shared("opened").await;
    let waiting = w.shared("waiting").await;
    w.reveal(&opened).await;
    w.wait_phase("opened", "Received").await;

    let out = kubectl_ots(&["-n", &w.ns, "list"]).await;
    assert_ok(&out);
    let table = stdout(&out);
    assert!(table.starts_with("NAME"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}: {table}"))
            .to_owned()
    };
    assert!(
        row("opened").contains("Received") && row("opened").contains("yes"),
        "{table}"
    );
    let expires = waiting
        .status
        .as_ref()
        .unwrap()
        .expires_at
        .as_ref()
        .unwrap()
        .0
        .to_string();
    let waiting_row = row("waiting");
    assert!(
        waiting_row.contains("Shared") && waiting_row.contains(" no "),
        "{table}"
    );
    assert!(
        waiting_row.contains(&expires) && waiting_row.contains("db/password"),
        "{table}"
    );
    for link in [&opened, &waiting].map(|o| o.status.as_ref().unwrap().link.clone().unwrap()) {
        assert!(!table.contains(&link) && !stderr(&out).contains(&link));
    }

    let out = kubectl_ots(&["-n", &w.ns, "get", "waiting"]).await;
    assert_ok(&out);
    assert!(stdout(&out).contains("Shared") && stdout(&out).contains(&expires));
    assert!(!stdout(&out).contains(&waiting.status.as_ref().unwrap().link.clone().unwrap()));

    assert_names_the_missing_share(&w, "get").await;

    let (_, empty) = setup("plugin-empty").await;
    let out = kubectl_ots(&["-n", &empty, "list"]).await;
    assert_ok(&out);
    assert!(
        stderr(&out).contains("No OneTimeShares"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn reissue_after_the_link_was_opened_gives_a_new_working_link() {
    let w = World::start("plugin-reissue").await;
    w.secret("db", &[("password", b"again")]).await;
    let out = kubectl_ots(&[
        "-n", &w.ns, "share", "db", "--key", "password", "--name", "h", "--wait",
    ])
    .await;
    assert_ok(&out);
    let first = stdout(&out).trim().to_owned();
    assert_eq!(w.reveal_link(&first, None).await.expect("reveal"), "again");
    w.wait_phase("h", "Received").await;

    let out = kubectl_ots(&["-n", &w.ns, "reissue", "h", "--wait"]).await;
    assert_ok(&out);
    assert!(
        stdout(&out).is_empty(),
        "reissue prints no link: {}",
        stdout(&out)
    );
    let reissued = w.shares().get("h").await.expect("get");
    let status = reissued.status.clone().unwrap();
    assert_eq!(status.phase.as_str(), "Shared");
    assert_eq!(
        status.reshare_token.as_deref(),
        reissued
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("ots.dev/reshare")
            .map(String::as_str)
    );
    let link = status.link.unwrap();
    assert_ne!(link, first);
    assert_eq!(w.reveal_link(&link, None).await.expect("reveal"), "again");
    assert_eq!(w.calls("burn"), 0);

    assert_names_the_missing_share(&w, "reissue").await;
}

/// `kubectl ots VERB nope` fails with exit code 1 and says the OneTimeShare does not exist.
async fn assert_names_the_missing_share(w: &World, verb: &str) {
    let out = kubectl_ots(&["-n", &w.ns, verb, "nope"]).await;
    assert_fails(
        &out,
        1,
        &format!("OneTimeShare {}/nope does not exist", w.ns),
    );
}

#[tokio::test]
async fn burn_deletes_the_share_and_says_the_link_was_burned() {
    let w = World::start("plugin-burn").await;
    w.secret("db", &[("password", b"burn-me")]).await;
    w.share(
        "live",
        json!({"secretRef": {"name": "db"}, "deletionPolicy": "Keep"}),
    )
    .await;
    w.share("spent", json!({"secretRef": {"name": "db"}})).await;
    let live = w.shared("live").await;
    let spent = w.shared("spent").await;
    w.reveal(&spent).await;
    w.wait_phase("spent", "Received").await;

    // deletionPolicy Keep is switched to Burn first: `burn` means burn.
    let out = kubectl_ots(&["-n", &w.ns, "burn", "live"]).await;
    assert_ok(&out);
    assert!(stdout(&out).starts_with("burned"), "{}", stdout(&out));
    assert!(w.shares().get_opt("live").await.expect("get").is_none());
    let link = live.status.unwrap().link.unwrap();
    assert!(
        w.reveal_link(&link, None).await.is_err(),
        "the link no longer works"
    );

    let out = kubectl_ots(&["-n", &w.ns, "burn", "spent"]).await;
    assert_ok(&out);
    assert!(
        stdout(&out).starts_with("nothing to burn"),
        "{}",
        stdout(&out)
    );

    assert_names_the_missing_share(&w, "burn").await;
}

#[tokio::test]
async fn burn_keep_burns_the_link_and_keeps_the_share() {
    let w = World::start("plugin-burn-keep").await;
    w.secret("db", &[("password", b"keep-me-burned")]).await;
    w.share("live", json!({"secretRef": {"name": "db"}})).await;
    w.share("spent", json!({"secretRef": {"name": "db"}})).await;
    let live = w.shared("live").await;
    let spent = w.shared("spent").await;
    w.reveal(&spent).await;
    w.wait_phase("spent", "Received").await;

    let out = kubectl_ots(&["-n", &w.ns, "burn", "live", "--keep"]).await;
    assert_ok(&out);
    assert!(stdout(&out).starts_with("burned"), "{}", stdout(&out));
    let kept = w.shares().get("live").await.expect("the share is kept");
    assert_eq!(phase(&kept), "Burned");
    let link = live.status.unwrap().link.unwrap();
    assert!(
        w.reveal_link(&link, None).await.is_err(),
        "the link no longer works"
    );
    assert_eq!(w.calls("burn"), 1);

    let out = kubectl_ots(&["-n", &w.ns, "burn", "spent", "--keep"]).await;
    assert_ok(&out);
    assert!(
        stdout(&out).starts_with("nothing to burn"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        phase(&w.shares().get("spent").await.expect("kept")),
        "Received"
    );
    assert_eq!(w.calls("burn"), 1, "nothing live, no burn call");
}

#[tokio::test]
async fn bad_flags_are_refused_before_anything_is_created() {
    let (client, ns) = setup("plugin-flags").await;
    install_crd();
    create_secret(&client, &ns, "db", &[("password", b"x")]).await;
    let cases: [(&[&str], &str); 7] = [
        (&["share", "db", "--ttl", "10s"], "must be at least 60s"),
        (&["share", "db", "--ttl", "1w"], "must be a whole number"),
        (
            &["share", "db", "--passphrase-from", "nokey"],
            "must be SECRET/KEY",
        ),
        (
            &["share", "db", "--recipient", "not-an-email"],
            "must be an email address",
        ),
        (&["share", "Bad_Name"], "is not a valid name"),
        (
            &["share", "db", "--key", "a/b"],
            "is not a valid Secret key",
        ),
        (&["share", "db", "--frobnicate"], "unexpected argument"),
    ];
    for (args, needle) in cases {
        let mut full = vec!["-n", ns.as_str()];
        full.extend_from_slice(args);
        let out = kubectl_ots(&full).await;
        assert_fails(&out, 2, needle);
    }
    let out = kubectl_ots(&["-n", &ns, "burn", "x", "--timeout", "soon"]).await;
    assert_fails(&out, 2, "is not a duration");
    assert_no_shares(&client, &ns).await;
}

#[tokio::test]
async fn generate_wait_prints_a_link_that_reveals_the_value_the_new_secret_holds() {
    let w = World::start("plugin-generate").await;
    let (client, ns, server) = (&w.client, &w.ns, &w.server);

    let out = kubectl_ots(&[
        "-n",
        ns,
        "generate",
        "app-token",
        "--length",
        "24",
        "--key",
        "token",
        "--name",
        "app-token-share",
        "--wait",
    ])
    .await;
    let (printed, link) = only_link(&out, &server.url());

    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    let secret = secrets.get("app-token").await.expect("the Secret exists");
    let value = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    assert_eq!(value.len(), 24);
    assert!(!printed.contains(&value) && !stderr(&out).contains(&value));
    let share = w.shares().get("app-token-share").await.expect("get");
    assert_eq!(share.spec.generate.map(|g| g.length), Some(24));
    assert_eq!(reveal(server, &link, None).await.expect("reveal"), value);

    // A Secret the operator made may be named again: its value is shared as it is.
    let again = kubectl_ots(&[
        "-n",
        ns,
        "generate",
        "app-token",
        "--key",
        "token",
        "--wait",
    ])
    .await;
    assert_ok(&again);
    assert!(stderr(&again).contains("was made by the ots-operator"));
    assert_eq!(
        reveal(server, stdout(&again).trim(), None)
            .await
            .expect("reveal"),
        value
    );
}

#[tokio::test]
async fn generate_refuses_a_secret_it_did_not_make_and_bad_flags_and_creates_nothing() {
    let (client, ns) = setup("plugin-generate-refusals").await;
    install_crd();
    create_secret(&client, &ns, "hand-made", &[("value", b"mine")]).await;
    let out = kubectl_ots(&["-n", &ns, "generate", "hand-made", "--wait"]).await;
    assert_fails(&out, 1, "was not made by the ots-operator");
    assert!(!stderr(&out).contains("mine"));
    let cases: [(&[&str], &str); 7] = [
        (&["generate", "app", "--length", "7"], "not in 8..=1024"),
        (&["generate", "app", "--length", "1025"], "not in 8..=1024"),
        (&["generate", "app", "--length", "many"], "invalid value"),
        (&["generate", "app", "--charset", "emoji"], "invalid value"),
        (&["generate", "Bad_Name"], "is not a valid name"),
        (
            &["generate", "app", "--key", "a/b"],
            "is not a valid Secret key",
        ),
        (&["generate", "app", "--ttl", "10s"], "must be at least 60s"),
    ];
    for (args, needle) in cases {
        let mut full = vec!["-n", ns.as_str()];
        full.extend_from_slice(args);
        let out = kubectl_ots(&full).await;
        assert_fails(&out, 2, needle);
    }
    let all = shares(&client, &ns)
        .list(&Default::default())
        .await
        .expect("list");
    assert!(all.items.is_empty());
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), &ns);
    assert!(secrets.get_opt("app").await.expect("get").is_none());
}

#[tokio::test]
async fn a_wrong_context_or_kubeconfig_is_named_in_the_error() {
    let out = kubectl_ots(&["--context", "nope", "list"]).await;
    assert_fails(&out, 1, "context \"nope\" is not in the kubeconfig");
    let out = kubectl_ots_with(Path::new("/nonexistent/kubeconfig"), &["list"]).await;
    assert_fails(&out, 1, "cannot read /nonexistent/kubeconfig");
}

#[tokio::test]
async fn a_user_without_permission_is_told_what_was_refused() {
    let (client, ns) = setup("plugin-forbidden").await;
    install_crd();
    create_secret(&client, &ns, "db", &[("password", b"x")]).await;
    cluster::create_service_account(&client, &ns, "nobody").await;
    // A kubeconfig with a second context for that ServiceAccount (its token, no rights).
    let token = service_account_token(&client, &ns, "nobody").await;
    let dir = tempdir();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(kubeconfig_path(), &kubeconfig).expect("copy the kubeconfig");
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(cluster::tool_path("kubectl"))
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let cluster_name = kubectl(&["config", "view", "-o", "jsonpath={.clusters[0].name}"]);
    kubectl(&[
        "config",
        "set-credentials",
        "nobody",
        &format!("--token={token}"),
    ]);
    kubectl(&[
        "config",
        "set-context",
        "nobody",
        &format!("--cluster={cluster_name}"),
        "--user=nobody",
    ]);

    let out = kubectl_ots_with(
        &kubeconfig,
        &["--context", "nobody", "-n", &ns, "share", "db"],
    )
    .await;
    assert_fails(&out, 1, &format!("not allowed to get Secret {ns}/db"));
    assert!(!stderr(&out).contains(&token));
    let out = kubectl_ots_with(&kubeconfig, &["--context", "nobody", "-n", &ns, "list"]).await;
    assert_fails(
        &out,
        1,
        &format!("not allowed to list OneTimeShares in {ns}"),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn completion_scripts_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ots"))
            .args(["completion", shell])
            .output()
            .await
            .expect("run kubectl-ots");
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("reissue") && script.contains("passphrase-from"),
            "{shell}"
        );
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ots"))
        .args(["completion", "tcsh"])
        .output()
        .await
        .expect("run kubectl-ots");
    assert_eq!(out.status.code(), Some(2));
}

/// A fresh token of ServiceAccount `namespace/name`.
async fn service_account_token(client: &kube::Client, namespace: &str, name: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    kube::Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &Default::default(), &request)
        .await
        .expect("request a token")
        .status
        .expect("a token status")
        .token
        .expect("a token")
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "kubectl-ots-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}
