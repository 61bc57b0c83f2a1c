//! Container and serverless recipes: Cloud Run (multi-region), Cloud Run jobs, Lambda (SAM),
//! ECS on Fargate, Kubernetes, Azure Container Apps, Fly.io and Pulumi.

use super::harness::{Case, TAG, run_with, transcript};

/// `docker login` reads the password from stdin; everything else just records its argv.
pub const DOCKER: &str = r#"case "$1" in login) cat > /dev/null ;; esac"#;
const DOCKERFILE: &str = "FROM scratch\nCOPY . /app\n";

pub fn cloud_run() -> Case {
    Case::new(
        "gcp-cloud-run",
        "name: api\nrecipe: gcp-cloud-run\nregions: [us-central1, europe-west1]\ncloud_run:\n  project: acme-prod\n  \
         allow_unauthenticated: true\n  memory: 512Mi\n  max_instances: 10\n  env_vars:\n    LOG_LEVEL: info\n    \
         ORIGINS: https://a.example,https://b.example\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("gcloud", ":")
}

pub fn cloud_run_job() -> Case {
    Case::new(
        "gcp-cloud-run-job",
        "name: migrate\nrecipe: gcp-cloud-run-job\nregion: us-central1\ncloud_run_job:\n  project: acme-prod\n  \
         repository: jobs\n  execute: true\n  args: [migrate, \"--only=users,orders\"]\n  task_timeout: 10m\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("gcloud", ":")
}

pub fn lambda() -> Case {
    Case::new(
        "aws-lambda",
        "name: thumbnails\nrecipe: aws-lambda\nregions: [us-east-1, eu-west-1]\nlambda:\n  stack_name: thumbnails-prod\n  \
         parameters:\n    Stage: prod\n  version_parameter: Version\n  tags:\n    team: media\n  \
         image_repository: 123456789012.dkr.ecr.{region}.amazonaws.com/thumbnails\n",
    )
    .file("svc/template.yaml", "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n")
    .fake("sam", ":")
    .fake("aws", "printf ecr-password")
    .fake("docker", DOCKER)
}

/// A fake `aws` for ECS: the service runs task definition `api:7` until `update-service`,
/// then reports `api:8` rolled out (or, with `STUCK`, a rollout that never completes).
pub fn ecs_aws(stuck: bool) -> String {
    let rollout = if stuck { "IN_PROGRESS" } else { "COMPLETED" };
    format!(
        r#"state=[ROOT]/.calls/ecs-updated
td=arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7
[ -f "$state" ] && td=arn:aws:ecs:eu-west-1:123456789012:task-definition/api:8
case "$1 $2" in
  "ecr get-login-password") printf 'ecr-password' ;;
  "ecs describe-services")
    printf '{{"services":[{{"serviceName":"api","status":"ACTIVE","taskDefinition":"%s","deployments":[{{"status":"PRIMARY","taskDefinition":"%s","rolloutState":"{rollout}","desiredCount":2,"runningCount":1}}],"events":[{{"message":"(service api) has started 1 tasks: (task 1)."}},{{"message":"(service api) was unable to place a task."}}]}}],"failures":[]}}' "$td" "$td" ;;
  "ecs describe-task-definition")
    printf '{{"taskDefinition":{{"taskDefinitionArn":"%s","family":"api","revision":7,"status":"ACTIVE","networkMode":"awsvpc","requiresCompatibilities":["FARGATE"],"cpu":"256","memory":"512","compatibilities":["EC2","FARGATE"],"containerDefinitions":[{{"name":"api","image":"old/api:1.2.2","essential":true}},{{"name":"envoy","image":"envoy:1.29"}}]}}}}' "$td" ;;
  "ecs register-task-definition")
    printf '{{"taskDefinition":{{"taskDefinitionArn":"arn:aws:ecs:eu-west-1:123456789012:task-definition/api:8","revision":8}}}}' ;;
  "ecs update-service") touch "$state"; printf '{{"service":{{"serviceName":"api"}}}}' ;;
esac"#
    )
}

pub fn ecs(stuck: bool) -> Case {
    let wait =
        if stuck { "  wait_timeout: 2s\n  poll_interval: 1\n" } else { "  poll_interval: 0\n" };
    Case::new(
        "aws-ecs-fargate",
        &format!(
            "name: api\nrecipe: aws-ecs-fargate\nregion: eu-west-1\necs:\n  account_id: \"123456789012\"\n  cluster: prod\n{wait}"
        ),
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("aws", ecs_aws(stuck))
}

pub const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      \
    containers:\n        - name: api\n          image: api:dev\n        - name: sidecar\n          image: \"envoyproxy/envoy:v1.29\"\n";

pub fn kubernetes(rollout_body: &str) -> Case {
    Case::new(
        "kubernetes",
        "name: api\nrecipe: kubernetes\nkubernetes:\n  repository: ghcr.io/acme/api\n  registry:\n    kind: ghcr\n    \
         owner: acme\n    username: ci\n    token_env: GHCR_TOKEN\n  namespace: prod\n  context: prod-cluster\n  \
         rollout_timeout: 2m\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .file("svc/k8s/deployment.yaml", DEPLOYMENT)
    .file("svc/k8s/service.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n")
    .fake("docker", DOCKER)
    .fake("kubectl", format!(r#"case "$*" in *"rollout status"*) {rollout_body} ;; esac"#))
    .secret("GHCR_TOKEN", "ghp_SECRET_k8s_token")
}

pub fn container_apps() -> Case {
    Case::new(
        "azure-container-apps",
        "name: web\nrecipe: azure-container-apps\ncontainer_app:\n  resource_group: rg-prod\n  registry: acmecr\n  \
         env_vars:\n    MODE: production\n  min_replicas: 1\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("az", ":")
}

pub fn fly() -> Case {
    Case::new(
        "fly",
        "name: edge\nrecipe: fly\nregions: [ams, iad]\nfly:\n  app: acme-edge\n  strategy: bluegreen\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("flyctl", ":")
    .secret("FLY_API_TOKEN", "fo1_SECRET_fly_token")
}

pub fn pulumi() -> Case {
    Case::new(
        "pulumi",
        "name: api\nrecipe: pulumi\npulumi:\n  stack: acme/prod\n  config_key: api:image\n  repository: ghcr.io/acme/api\n  \
         targets:\n    - urn:pulumi:prod::acme::gcp:cloudrun/service:Service::api\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .file("infra/Pulumi.yaml", "name: acme\nruntime: yaml\n")
    .fake("docker", DOCKER)
    .fake("pulumi", ":")
}

/// Multi-region Cloud Run: one build, then per region one push of that region's image and one
/// deploy using exactly that image.
#[test]
fn cloud_run_builds_once_and_deploys_each_region_from_its_own_image() {
    let t = cloud_run().project();
    run_with(&t, &["deploy", "--tag", TAG]).success();
    let docker = t.calls("docker");
    let builds: Vec<_> =
        docker.iter().filter(|a| a.get(1).is_some_and(|s| s == "buildx" || s == "build")).collect();
    assert_eq!(builds.len(), 1, "{docker:?}");
    let pushes: Vec<String> =
        docker.iter().filter(|a| a[0] == "push").map(|a| a[1].clone()).collect();
    assert_eq!(pushes.len(), 2, "{docker:?}");
    let deploys = t
        .calls("gcloud")
        .into_iter()
        .filter(|a| a.starts_with(&["run".into(), "deploy".into()]))
        .collect::<Vec<_>>();
    assert_eq!(deploys.len(), 2);
    for region in ["us-central1", "europe-west1"] {
        let image = format!("{region}-docker.pkg.dev/acme-prod/pilum/api:{TAG}");
        assert!(pushes.contains(&image), "{pushes:?}");
        let deploy = deploys
            .iter()
            .find(|a| a.windows(2).any(|w| w[0] == "--region" && w[1] == region))
            .expect("deploy per region");
        let used = deploy.windows(2).find(|w| w[0] == "--image").map(|w| w[1].clone());
        assert_eq!(used.as_deref(), Some(image.as_str()), "{deploy:?}");
        // Every push of a region happens after the single build.
    }
    let timed = t.timed_calls("docker");
    let build_at = timed.iter().find(|(_, a)| a[0] == "buildx").map(|(ts, _)| *ts).expect("build");
    assert!(timed.iter().filter(|(_, a)| a[0] == "push").all(|(ts, _)| *ts > build_at));
}

#[test]
fn ecs_that_never_stabilises_times_out_naming_the_service() {
    let t = ecs(true).project();
    let r = run_with(&t, &["deploy", "--tag", TAG]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(
            "ECS service `api` in cluster `prod` (eu-west-1) did not become stable within 2s"
        ),
        "{all}"
    );
    assert!(all.contains("was unable to place a task"), "the latest events are shown: {all}");
    assert!(all.contains("raise `wait_timeout` under `ecs:`"), "{all}");
    // It did register and roll out before waiting.
    let aws = transcript(&t, &["aws"]);
    assert!(aws.contains("aws ecs update-service --cluster prod --service api --task-definition arn:aws:ecs:eu-west-1:123456789012:task-definition/api:8"), "{aws}");
}

#[test]
fn ecs_registers_a_revision_that_only_changes_the_image() {
    let (t, _, _) = ecs(false).run();
    let file = t.path().join(".pilum/build/ecs/api/eu-west-1-task-definition.json");
    let td: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("task definition written"))
            .expect("JSON");
    assert_eq!(
        td["containerDefinitions"][0]["image"],
        format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:{TAG}")
    );
    assert_eq!(
        td["containerDefinitions"][1]["image"], "envoy:1.29",
        "other containers keep their image"
    );
    assert_eq!(td["family"], "api");
    for read_only in ["taskDefinitionArn", "revision", "status", "compatibilities"] {
        assert!(td.get(read_only).is_none(), "`{read_only}` must not be sent back: {td}");
    }
}

#[test]
fn kubernetes_rollout_failure_shows_the_kubectl_output_tail() {
    let t = kubernetes(
        r#"echo "Waiting for deployment \"api\" rollout to finish: 1 of 2 updated replicas are available..."; echo 'error: deployment "api" exceeded its progress deadline' >&2; exit 1"#,
    )
    .project();
    let r = run_with(&t, &["deploy", "--tag", TAG]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(
            "rollout of `deployment/api` in namespace `prod` failed (kubectl exited with 1)"
        ),
        "{all}"
    );
    assert!(all.contains(r#"error: deployment "api" exceeded its progress deadline"#), "{all}");
    assert!(all.contains("1 of 2 updated replicas are available"), "{all}");
    assert!(all.contains("kubectl rollout undo deployment/api"), "{all}");
}

#[test]
fn kubernetes_applies_a_rendered_copy_with_the_new_image() {
    let (t, _, _) = kubernetes(":").run();
    let rendered =
        std::fs::read_to_string(t.path().join(".pilum/build/kubernetes/api/manifests.yaml"))
            .expect("rendered");
    assert!(rendered.contains(&format!("          image: ghcr.io/acme/api:{TAG}\n")), "{rendered}");
    assert!(
        rendered.contains("image: \"envoyproxy/envoy:v1.29\""),
        "other images untouched: {rendered}"
    );
    assert!(rendered.contains("kind: Service"), "{rendered}");
    let original =
        std::fs::read_to_string(t.path().join("svc/k8s/deployment.yaml")).expect("original");
    assert!(original.contains("image: api:dev"), "the checked-in manifest is not modified");
}

#[test]
fn kubernetes_kustomize_gets_an_overlay_setting_the_image() {
    let case = Case::new(
        "kubernetes",
        "name: api\nrecipe: kubernetes\nkubernetes:\n  repository: ghcr.io/acme/api\n  kustomize: deploy/overlays/prod\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .file("svc/deploy/overlays/prod/kustomization.yaml", "resources: []\n")
    .fake("docker", DOCKER)
    .fake("kubectl", ":");
    let t = case.project();
    run_with(&t, &["deploy", "--tag", TAG]).success();
    let overlay =
        std::fs::read_to_string(t.path().join(".pilum/build/kubernetes/api/kustomization.yaml"))
            .expect("overlay");
    assert!(overlay.contains("  - ../../../../svc/deploy/overlays/prod\n"), "{overlay}");
    assert!(
        overlay.contains("  - name: api\n    newName: ghcr.io/acme/api\n    newTag: \"v1.2.3\"\n"),
        "{overlay}"
    );
    let kubectl = transcript(&t, &["kubectl"]);
    assert_eq!(
        kubectl,
        "kubectl apply -k [ROOT]/.pilum/build/kubernetes/api\nkubectl rollout status deployment/api --timeout 5m"
    );
}
