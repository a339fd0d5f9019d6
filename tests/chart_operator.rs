//! The chart's RBAC is enough and no more: the operator, running with a token of the chart's
//! ServiceAccount against the real apiserver, completes the happy path, while that account is
//! denied what it does not need.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use ots_testserver::Config;
use serde_json::json;
use support::cluster::{client as admin_client, repo_root, tool_command};
use support::operator::*;

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what} should be forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn the_operator_works_with_exactly_the_rights_the_chart_grants() {
    let admin = admin_client().await;
    support::chart::install(&[]);
    let ns = support::cluster::test_namespace(&admin, "chart-sa").await;
    let server = ots_server(Config::default());
    let kubeconfig = support::chart::service_account_kubeconfig(&admin).await;
    let kubeconfig_text = kubeconfig.to_string_lossy().to_string();

    // Cluster-wide, leader-elected, as the chart runs it (the Lease lives in the release namespace).
    let mut args = fast_args(&ns, &server.url());
    let at = args.iter().position(|a| a == "--namespace").unwrap();
    args.drain(at..at + 2);
    args.extend(["--leader-elect", "--leader-elect-namespace", "ots-operator"].map(String::from));
    // The chart's own flags: per-share records in the release namespace, creators checked by the
    // chart's admission policy (installed and on by default).
    // (`fast_args` passes `--admission-guard`; the records go where the chart puts them.)
    let state = args
        .iter()
        .position(|a| a == "--state-namespace")
        .expect("fast_args names a state namespace");
    args[state + 1] = "ots-operator".into();
    let operator = Operator::start_with(
        &args,
        &[
            ("KUBECONFIG", kubeconfig_text.as_str()),
            ("RUST_LOG", "info,ots_operator=debug"),
        ],
    );

    create_secret(&admin, &ns, "db", &[("password", b"via-the-chart")]).await;
    create_share(
        &admin,
        &ns,
        "read",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    create_share(
        &admin,
        &ns,
        "unread",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let shared = wait_for(&admin, &ns, "read", "phase Shared", |o| {
        phase(o) == "Shared"
    })
    .await;
    wait_event(&admin, &ns, "read", "Normal", "Shared").await;
    let link = shared.status.unwrap().link.unwrap();
    assert_eq!(reveal(&server, &link, None).await.unwrap(), "via-the-chart");
    wait_for(&admin, &ns, "read", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    wait_for(&admin, &ns, "unread", "phase Shared", |o| {
        phase(o) == "Shared"
    })
    .await;
    delete_share(&admin, &ns, "unread").await;
    wait_gone(&admin, &ns, "unread").await;
    assert_eq!(
        server.stats().live_secrets,
        0,
        "burned through the chart's rights"
    );
    // A denied request shows up as the apiserver's reason "Forbidden" (or "forbidden" in the
    // message); a bare "403" would also match timestamps and key prefixes.
    let logs = operator.logs();
    assert!(
        !logs.contains("Forbidden") && !logs.contains("forbidden"),
        "the operator hit a permission error:\n{logs}"
    );

    // What the account must not do.
    let account = Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    forbidden(
        Api::<Secret>::all(account.clone())
            .list(&ListParams::default())
            .await,
        "list secrets cluster-wide",
    );
    forbidden(
        Api::<Secret>::namespaced(account.clone(), &ns)
            .list(&ListParams::default())
            .await,
        "list secrets in a namespace",
    );
    let watch = Api::<Secret>::namespaced(account.clone(), &ns)
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .map(|_| ());
    forbidden(watch, "watch secrets");
    forbidden(
        Api::<Secret>::namespaced(account.clone(), &ns)
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some("x".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await,
        "create secrets",
    );
    forbidden(
        Api::<Deployment>::all(account.clone())
            .list(&ListParams::default())
            .await,
        "list deployments",
    );
    // What it needs: get one Secret by name.
    Api::<Secret>::namespaced(account.clone(), &ns)
        .get("db")
        .await
        .expect("get a Secret by name");
    // Its own records: Secrets in the release namespace, and only there.
    // (Labelled as the operator's own, as its records are: the chart's admission policy refuses
    // the account any other Secret write.)
    let own = Api::<Secret>::namespaced(account.clone(), "ots-operator");
    own.create(
        &PostParams::default(),
        &Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("record-probe".into()),
                labels: Some(
                    [(
                        ots_operator::resource::MANAGED_BY_LABEL.to_owned(),
                        ots_operator::resource::MANAGED_BY_VALUE.to_owned(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .expect("create a Secret in the release namespace");
    own.get("record-probe")
        .await
        .expect("get a Secret in the release namespace");
    own.list(&ListParams::default())
        .await
        .expect("list Secrets in the release namespace");
    own.delete("record-probe", &Default::default())
        .await
        .expect("delete a Secret in the release namespace");

    // spec.generate without the chart's secretWrites: a clear refusal that waits for a fix (no
    // Secret, no share, no retry loop).
    create_share(
        &admin,
        &ns,
        "minted",
        json!({"secretRef": {"name": "app-token", "key": "token"}, "generate": {}}),
    )
    .await;
    let failed = wait_for(&admin, &ns, "minted", "SecretWriteForbidden", |o| {
        ready_reason_is(o, "SecretWriteForbidden")
    })
    .await;
    assert_eq!(phase(&failed), "Failed");
    let (_, _, message) = ready(&failed).unwrap();
    assert!(message.contains("secretWrites.enabled=true"), "{message}");
    wait_event(&admin, &ns, "minted", "Warning", "SecretWriteForbidden").await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let attempts = operator
        .logs()
        .lines()
        .filter(|l| l.contains("reconcile failed") && l.contains("/minted."))
        .count();
    assert_eq!(
        attempts, 1,
        "a refused write is tried once, not again for the failure report's own status write, \
         nor in a loop: {attempts} attempts"
    );
    assert!(
        Api::<Secret>::namespaced(admin.clone(), &ns)
            .get_opt("app-token")
            .await
            .unwrap()
            .is_none()
    );

    // With secretWrites.enabled, the chart's RBAC and admission policy let the operator create
    // the Secret it generates (labelled as its own), and the link reveals its value.
    let out = tool_command("helm")
        .args(["upgrade", "ots-operator"])
        .arg(repo_root().join("deploy/helm/ots-operator"))
        .args(["--namespace", "ots-operator", "--reuse-values"])
        .args(["--set", "secretWrites.enabled=true"])
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm upgrade failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // RBAC changes reach the authorizer a moment after they are written.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = tool_command("kubectl")
            .args(["auth", "can-i", "create", "secrets", "-n", &ns])
            .arg("--as=system:serviceaccount:ots-operator:ots-operator")
            .output()
            .expect("run kubectl");
        if String::from_utf8_lossy(&out.stdout).trim() == "yes" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "secretWrites.enabled never let the operator create Secrets"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    create_share(
        &admin,
        &ns,
        "minted-with-rights",
        json!({"secretRef": {"name": "app-token-2", "key": "token"}, "generate": {}}),
    )
    .await;
    let shared = wait_shared(&admin, &ns, "minted-with-rights").await;
    let secret = Api::<Secret>::namespaced(admin.clone(), &ns)
        .get("app-token-2")
        .await
        .expect("the generated Secret");
    let value = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    assert_eq!(open_link(&server, &shared).await, value);
}
