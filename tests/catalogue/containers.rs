//! Container and serverless recipes: Cloud Run (multi-region), Cloud Run jobs, Lambda (SAM),
//! ECS on Fargate, Kubernetes, Azure Container Apps, Fly.io and Pulumi.

use super::harness::{Case, TAG, run_with, transcript};

/// `docker login` reads the password from stdin; everything else just records its argv.
pub(crate) const DOCKER: &str = r#"case "$1" in login) cat > /dev/null ;; esac"#;
const DOCKERFILE: &str = "FROM scratch\nCOPY . /app\n";

/// A fake `gcloud`: the Artifact Registry repository exists in every region but
/// `europe-west1`, where `describe` answers `NOT_FOUND` as gcloud does. The Cloud Run service
/// serves revision `api-00002-xyz` (`v1.2.3`) with `api-00001-abc` ready before it; the job
/// runs `v1.2.3` until `jobs update --image` changes it, its previous execution ran `v1.2.2`.
pub(crate) const GCLOUD: &str = r#"case "$*" in
  "artifacts repositories describe "*europe-west1*) echo "ERROR: (gcloud.artifacts.repositories.describe) NOT_FOUND: Requested entity was not found." >&2; exit 1 ;;
  "artifacts repositories describe "*) echo "projects/acme-prod/locations/x/repositories/pilum" ;;
  "run services describe "*) printf '%s' '{"metadata":{"name":"api"},"spec":{"template":{"spec":{"containers":[{"image":"us-central1-docker.pkg.dev/acme-prod/pilum/api:v1.2.3"}]}}},"status":{"url":"https://api-7hx2-uc.a.run.app","latestCreatedRevisionName":"api-00002-xyz","latestReadyRevisionName":"api-00002-xyz","traffic":[{"revisionName":"api-00002-xyz","percent":100},{"revisionName":"api-00002-xyz","percent":0,"tag":"canary","url":"https://canary---api-7hx2-uc.a.run.app"}],"conditions":[{"type":"Ready","status":"True"}]}}' ;;
  "run revisions list "*) printf '%s' '[{"metadata":{"name":"api-00001-abc","creationTimestamp":"2025-05-01T10:00:00Z"},"status":{"conditions":[{"type":"Ready","status":"True"}]}},{"metadata":{"name":"api-00002-xyz","creationTimestamp":"2025-05-02T10:00:00Z"},"status":{"conditions":[{"type":"Ready","status":"True"}]}}]' ;;
  "run jobs update "*) prev=''; for a in "$@"; do [ "$prev" = --image ] && printf '%s' "$a" > [ROOT]/.calls/job-image; prev="$a"; done ;;
  "run jobs describe "*) image=$(cat [ROOT]/.calls/job-image 2>/dev/null || echo us-central1-docker.pkg.dev/acme-prod/jobs/migrate:v1.2.3)
    printf '{"metadata":{"name":"migrate","generation":4},"spec":{"template":{"spec":{"template":{"spec":{"containers":[{"image":"%s"}]}}}}},"status":{"conditions":[{"type":"Ready","status":"True"}],"latestCreatedExecution":{"name":"migrate-x7k2p"}}}' "$image" ;;
  "run jobs executions list "*) printf '%s' '[{"metadata":{"name":"migrate-a1b2c","creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"template":{"spec":{"containers":[{"image":"us-central1-docker.pkg.dev/acme-prod/jobs/migrate:v1.2.2"}]}}},"status":{"conditions":[{"type":"Completed","status":"True"}]}},{"metadata":{"name":"migrate-x7k2p","creationTimestamp":"2025-05-02T10:00:00Z"},"spec":{"template":{"spec":{"containers":[{"image":"us-central1-docker.pkg.dev/acme-prod/jobs/migrate:v1.2.3"}]}}},"status":{"conditions":[{"type":"Completed","status":"True"}]}}]' ;;
  *"logs read "*|*"logs tail "*) echo "2025-05-02 10:00:01 INFO started"; echo "2025-05-02 10:00:02 INFO ready" ;;
esac"#;

pub(crate) fn cloud_run() -> Case {
    Case::new(
        "gcp-cloud-run",
        "name: api\nrecipe: gcp-cloud-run\nregions: [us-central1, europe-west1]\ncloud_run:\n  project: acme-prod\n  \
         allow_unauthenticated: true\n  memory: 512Mi\n  max_instances: 10\n  env_vars:\n    LOG_LEVEL: info\n    \
         ORIGINS: https://a.example,https://b.example\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("gcloud", GCLOUD)
}

/// A canary: the new revision is deployed without traffic under a tag, then promoted.
pub(crate) fn cloud_run_canary() -> Case {
    Case::new(
        "gcp-cloud-run",
        "name: api\nrecipe: gcp-cloud-run\nregion: us-central1\ncloud_run:\n  project: acme-prod\n  \
         no_traffic: true\n  traffic_tag: canary\n  create_repository: false\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("gcloud", GCLOUD)
}

pub(crate) fn cloud_run_job() -> Case {
    Case::new(
        "gcp-cloud-run-job",
        "name: migrate\nrecipe: gcp-cloud-run-job\nregion: us-central1\ncloud_run_job:\n  project: acme-prod\n  \
         repository: jobs\n  execute: true\n  args: [migrate, \"--only=users,orders\"]\n  task_timeout: 10m\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("gcloud", GCLOUD)
}

pub(crate) fn lambda() -> Case {
    Case::new(
        "aws-lambda",
        "name: thumbnails\nrecipe: aws-lambda\nregions: [us-east-1, eu-west-1]\nlambda:\n  stack_name: thumbnails-prod\n  \
         parameters:\n    Stage: prod\n  version_parameter: Version\n  tags:\n    team: media\n  \
         image_repository: 123456789012.dkr.ecr.{region}.amazonaws.com/thumbnails\n",
    )
    .file("svc/template.yaml", "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n")
    .fake("sam", ":")
    .fake("aws", LAMBDA_AWS)
    .fake("docker", DOCKER)
}

/// A fake `aws` for one Lambda function without an alias: its `$LATEST` has a revision ID and
/// a function URL.
pub(crate) const LAMBDA_AWS: &str = r#"case "$*" in
  "ecr get-login-password"*) printf ecr-password ;;
  "cloudformation describe-stack-resources"*) printf '{"StackResources":[{"LogicalResourceId":"Thumbnails","PhysicalResourceId":"thumbnails-prod-Thumbnails-9Z","ResourceType":"AWS::Lambda::Function"}]}' ;;
  "lambda get-function-configuration"*) printf '{"FunctionName":"thumbnails-prod-Thumbnails-9Z","RevisionId":"4b7c2e1a-rev","State":"Active","LastUpdateStatus":"Successful"}' ;;
  "lambda get-function-url-config"*) printf '{"FunctionUrl":"https://thumbs.lambda-url.us-east-1.on.aws/"}' ;;
  "logs tail"*) echo "2025-05-02T10:00:01 START RequestId: 1"; echo "2025-05-02T10:00:02 END RequestId: 1" ;;
esac"#;

/// Lambda with two image functions, one repository each, and a published alias: the stack
/// has two functions whose `live` alias points at version 7 and 3.
pub(crate) fn lambda_alias() -> Case {
    Case::new(
        "aws-lambda",
        "name: thumbnails\nrecipe: aws-lambda\nregion: eu-west-1\nlambda:\n  stack_name: thumbnails-prod\n  \
         image_repositories:\n    Resize: 123456789012.dkr.ecr.{region}.amazonaws.com/resize\n    \
         Crop: 123456789012.dkr.ecr.{region}.amazonaws.com/crop\n  alias: live\n",
    )
    .file("svc/template.yaml", "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n")
    .fake("sam", ":")
    .fake(
        "aws",
        r#"case "$*" in
  "ecr get-login-password"*) printf ecr-password ;;
  "cloudformation describe-stack-resources"*) printf '{"StackResources":[{"LogicalResourceId":"Crop","PhysicalResourceId":"thumbnails-prod-Crop-1A","ResourceType":"AWS::Lambda::Function"},{"LogicalResourceId":"CropAliaslive","PhysicalResourceId":"arn:aws:lambda:eu-west-1:123456789012:function:thumbnails-prod-Crop-1A:live","ResourceType":"AWS::Lambda::Alias"},{"LogicalResourceId":"Resize","PhysicalResourceId":"thumbnails-prod-Resize-2B","ResourceType":"AWS::Lambda::Function"}]}' ;;
  "lambda get-function-configuration"*) printf '{"State":"Active","LastUpdateStatus":"Successful"}' ;;
  "lambda get-function-url-config"*"thumbnails-prod-Crop-1A"*) printf '{"FunctionUrl":"https://crop.lambda-url.eu-west-1.on.aws/"}' ;;
  "lambda get-function-url-config"*) echo "An error occurred (ResourceNotFoundException) when calling the GetFunctionUrlConfig operation: The resource you requested does not exist." >&2; exit 254 ;;
  "lambda list-versions-by-function"*) printf '{"Versions":[{"Version":"$LATEST"},{"Version":"1"},{"Version":"2"},{"Version":"3"},{"Version":"6"},{"Version":"7"}]}' ;;
  "lambda update-alias"*) printf '{"Name":"live"}' ;;
  "logs tail"*) echo "2025-05-02T10:00:01 START RequestId: 1" ;;
  *"--function-name thumbnails-prod-Crop-1A"*) printf '{"Name":"live","FunctionVersion":"7"}' ;;
  *"--function-name thumbnails-prod-Resize-2B"*) printf '{"Name":"live","FunctionVersion":"3"}' ;;
esac"#,
    )
    .fake("docker", DOCKER)
}

/// A fake `aws` for ECS: the service runs task definition `api:7` until `update-service`,
/// then reports the one it was given rolled out (or, with `STUCK`, a rollout that never
/// completes).
pub(crate) fn ecs_aws(stuck: bool) -> String {
    let rollout = if stuck { "IN_PROGRESS" } else { "COMPLETED" };
    format!(
        r#"state=[ROOT]/.calls/ecs-updated
td=arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7
[ -f "$state" ] && td=$(cat "$state")
case "$1 $2" in
  "ecr get-login-password") printf 'ecr-password' ;;
  "ecs describe-services")
    printf '{{"services":[{{"serviceName":"api","status":"ACTIVE","desiredCount":2,"runningCount":2,"taskDefinition":"%s","deployments":[{{"status":"PRIMARY","taskDefinition":"%s","rolloutState":"{rollout}","desiredCount":2,"runningCount":1}}],"events":[{{"message":"(service api) has started 1 tasks: (task 1)."}},{{"message":"(service api) was unable to place a task."}}]}}],"failures":[]}}' "$td" "$td" ;;
  "ecs describe-task-definition")
    # Tags come back only when asked for, as in the ECS API.
    tags=''; case "$*" in *"--include TAGS"*) tags=',"tags":[{{"key":"team","value":"payments"}}]' ;; esac
    printf '{{"taskDefinition":{{"taskDefinitionArn":"%s","family":"api","revision":7,"status":"ACTIVE","networkMode":"awsvpc","requiresCompatibilities":["FARGATE"],"cpu":"256","memory":"512","compatibilities":["EC2","FARGATE"],"containerDefinitions":[{{"name":"api","image":"old/api:1.2.2","essential":true,"logConfiguration":{{"logDriver":"awslogs","options":{{"awslogs-group":"/ecs/api","awslogs-stream-prefix":"ecs"}}}}}},{{"name":"envoy","image":"envoy:1.29"}}]}}%s}}' "$td" "$tags" ;;
  "ecs register-task-definition")
    printf '{{"taskDefinition":{{"taskDefinitionArn":"arn:aws:ecs:eu-west-1:123456789012:task-definition/api:8","revision":8}}}}' ;;
  "ecs update-service")
    prev=''; for a in "$@"; do [ "$prev" = --task-definition ] && printf '%s' "$a" > "$state"; prev="$a"; done
    printf '{{"service":{{"serviceName":"api"}}}}' ;;
  "ecs list-task-definitions")
    printf '{{"taskDefinitionArns":["arn:aws:ecs:eu-west-1:123456789012:task-definition/api:8","arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7","arn:aws:ecs:eu-west-1:123456789012:task-definition/api:6"]}}' ;;
  "logs tail") echo "2025-05-02T10:00:01 ecs/api/1 listening on :8080" ;;
esac"#
    )
}

pub(crate) fn ecs(stuck: bool) -> Case {
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

pub(crate) const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      \
    containers:\n        - name: api\n          image: api:dev\n        - name: sidecar\n          image: \"envoyproxy/envoy:v1.29\"\n";

pub(crate) fn kubernetes(rollout_body: &str) -> Case {
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
    .fake("kubectl", kubectl(rollout_body))
    .secret("GHCR_TOKEN", "ghp_SECRET_k8s_token")
}

/// A fake `kubectl`: `rollout status` runs `rollout_body`; `get` reports deployment `api` at
/// revision 3, two replicas available, running `ghcr.io/acme/api:v1.2.3`.
pub(crate) fn kubectl(rollout_body: &str) -> String {
    format!(
        r#"case "$*" in
  *"rollout status"*) {rollout_body} ;;
  "get "*|*" get "*) printf '%s' '{{"kind":"Deployment","metadata":{{"name":"api","generation":3,"annotations":{{"deployment.kubernetes.io/revision":"3"}}}},"spec":{{"replicas":2,"selector":{{"matchLabels":{{"app":"api"}}}},"template":{{"spec":{{"containers":[{{"name":"api","image":"ghcr.io/acme/api:v1.2.3"}},{{"name":"sidecar","image":"envoyproxy/envoy:v1.29"}}]}}}}}},"status":{{"observedGeneration":3,"replicas":2,"updatedReplicas":2,"availableReplicas":2,"conditions":[{{"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable"}}]}}}}' ;;
  "logs "*|*" logs "*) echo "[pod/api-7d9f-x/api] listening on :8080" ;;
esac"#
    )
}

/// A fake `az` for Container Apps with state in `.calls/aca-revisions` (`<revision> <image>`
/// per line, oldest first): `containerapp update` creates `<app>--<suffix>` and refuses a
/// suffix that exists, as Azure does; `revision copy` adds one too; `revision list` lists the
/// revisions; `revision show` reports a revision provisioning on the first look and healthy
/// after; `show` reports the newest revision serving all traffic, in single-revision mode
/// unless `.calls/aca-multiple` exists.
pub(crate) fn aca_az() -> String {
    r#"state=[ROOT]/.calls/aca-revisions
arg() { want="$1"; shift; while [ $# -gt 1 ]; do [ "$1" = "$want" ] && { printf '%s' "$2"; return; }; shift; done; }
case "$*" in
  "containerapp revision list"*)
    printf '['; sep=''; day=0
    if [ -f "$state" ]; then while read -r n i; do
      day=$((day + 1))
      printf '%s{"name":"%s","properties":{"active":true,"createdTime":"2025-05-%02dT10:00:00Z","provisioningState":"Provisioned","healthState":"Healthy","runningState":"Running","template":{"containers":[{"name":"main","image":"%s"}]}}}' "$sep" "$n" "$day" "$i"; sep=','
    done < "$state"; fi
    printf ']' ;;
  "containerapp show"*)
    latest=$( [ -f "$state" ] && tail -n 1 "$state" | cut -d' ' -f1 )
    mode=Single; [ -f [ROOT]/.calls/aca-multiple ] && mode=Multiple
    printf '{"name":"web","properties":{"latestReadyRevisionName":"%s","configuration":{"activeRevisionsMode":"%s","ingress":{"fqdn":"web.kindhill-1a2b.westeurope.azurecontainerapps.io","traffic":[{"latestRevision":true,"weight":100}]}}}}' "$latest" "$mode" ;;
  "containerapp revision copy"*)
    from=$(arg --from-revision "$@"); image=$(grep "^$from " "$state" | cut -d' ' -f2)
    echo "$(arg --name "$@")--$(arg --revision-suffix "$@") $image" >> "$state" ;;
  "containerapp logs show"*) echo '{"TimeStamp":"2025-05-02T10:00:01Z","Log":"listening on :8080"}' ;;
  "containerapp revision show"*)
    rev=$(arg --revision "$@"); seen=[ROOT]/.calls/shown-$rev
    if [ -f "$seen" ]; then p=Provisioned; h=Healthy; r=Running; else p=Provisioning; h=None; r=Processing; : > "$seen"; fi
    printf '{"name":"%s","properties":{"provisioningState":"%s","healthState":"%s","runningState":"%s"}}' "$rev" "$p" "$h" "$r" ;;
  "containerapp update"*)
    rev="$(arg --name "$@")--$(arg --revision-suffix "$@")"
    if [ -f "$state" ] && grep -q "^$rev " "$state"; then
      echo "ERROR: (ContainerAppRevisionAlreadyExists) A revision with suffix in '$rev' already exists. Use a different revision suffix." >&2; exit 1
    fi
    echo "$rev $(arg --image "$@")" >> "$state" ;;
esac"#
    .to_string()
}

pub(crate) fn container_apps() -> Case {
    Case::new(
        "azure-container-apps",
        "name: web\nrecipe: azure-container-apps\ncontainer_app:\n  resource_group: rg-prod\n  registry: acmecr\n  \
         env_vars:\n    MODE: production\n  min_replicas: 1\n  poll_interval: 0\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("az", aca_az())
}

/// Container Apps in multiple-revision mode, pulling with the app's identity, labelling the
/// new revision.
pub(crate) fn container_apps_revisions() -> Case {
    Case::new(
        "azure-container-apps",
        "name: web\nrecipe: azure-container-apps\ncontainer_app:\n  resource_group: rg-prod\n  registry: acmecr\n  \
         revision_mode: multiple\n  label: canary\n  registry_identity: system\n  poll_interval: 0\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("az", aca_az())
}

/// A fake `flyctl`: release v12 runs `v1.2.3` on two started machines with passing checks; v11
/// ran the same image, v10 ran `v1.2.2`. A `deploy` makes release v13 of its image.
pub(crate) const FLYCTL: &str = r#"state=[ROOT]/.calls/fly-deployed
case "$1" in
  deploy) prev=''; for a in "$@"; do [ "$prev" = --image ] && printf '%s' "${a##*:}" > "$state"; prev="$a"; done ;;
  status) v=12; tag=v1.2.3; [ -f "$state" ] && { v=13; tag=$(cat "$state"); }
    printf '{"Name":"acme-edge","Status":"deployed","Version":%s,"Hostname":"acme-edge.fly.dev","Machines":[{"id":"1","state":"started","region":"ams","image_ref":{"registry":"registry.fly.io","repository":"acme-edge","tag":"%s"},"config":{"metadata":{"fly_process_group":"app"}},"checks":[{"name":"http","status":"passing"}]},{"id":"2","state":"started","region":"iad","image_ref":{"registry":"registry.fly.io","repository":"acme-edge","tag":"%s"},"config":{"metadata":{"fly_process_group":"worker"}},"checks":[]}]}' "$v" "$tag" "$tag" ;;
  releases) printf '%s' '[{"Version":12,"Status":"complete","ImageRef":"registry.fly.io/acme-edge:v1.2.3"},{"Version":11,"Status":"complete","ImageRef":"registry.fly.io/acme-edge:v1.2.3"},{"Version":10,"Status":"complete","ImageRef":"registry.fly.io/acme-edge:v1.2.2"}]' ;;
  logs) echo "2025-05-02T10:00:01Z app[1] ams [info] listening on :8080" ;;
esac"#;

pub(crate) fn fly() -> Case {
    Case::new(
        "fly",
        "name: edge\nrecipe: fly\nregions: [ams, iad]\nfly:\n  app: acme-edge\n  strategy: rolling\n  \
         max_unavailable: 0.25\n  process_groups: [app, worker]\n  release_command_timeout: 10m\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .fake("docker", DOCKER)
    .fake("flyctl", FLYCTL)
    .secret("FLY_API_TOKEN", "fo1_SECRET_fly_token")
}

/// Pulumi leaving the checkout untouched: the key is set in a copy of the stack file, first
/// refreshed from the last deployment.
pub(crate) fn pulumi_temp_config() -> Case {
    Case::new(
        "pulumi",
        "name: api\nrecipe: pulumi\npulumi:\n  stack: acme/prod\n  config_key: api:image\n  repository: ghcr.io/acme/api\n  \
         config_file: temp\n  refresh_config: true\n",
    )
    .file("svc/Dockerfile", DOCKERFILE)
    .file("infra/Pulumi.yaml", "name: acme\nruntime: yaml\n")
    .file("infra/Pulumi.prod.yaml", "config:\n  api:image: ghcr.io/acme/api:v1.2.2\n")
    .fake("docker", DOCKER)
    .fake("pulumi", ":")
}

pub(crate) fn pulumi() -> Case {
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
    .fake("kubectl", kubectl(":"));
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
        "kubectl apply -k [ROOT]/.pilum/build/kubernetes/api\nkubectl rollout status deployment/api --timeout 5m\nkubectl get deployment/api --output json"
    );
}

/// A 40-character SHA tag with an app name of 20 characters: the suffix is cut so that the
/// revision name `<app>--<suffix>` stays within Azure's 54 characters, and stays valid.
#[test]
fn container_apps_fit_the_revision_suffix_to_the_app_name() {
    let mut case = container_apps();
    case.files[0].1 = case.files[0]
        .1
        .replace("  registry: acmecr\n", "  registry: acmecr\n  app: checkout-frontend-eu\n");
    let t = case.project();
    let sha = "3F2A9C1D4E5F60718293A4B5C6D7E8F90A1B2C3D";
    run_with(&t, &["deploy", "--tag", sha]).success();
    let update = t
        .calls("az")
        .into_iter()
        .find(|a| a[..2] == ["containerapp", "update"])
        .expect("containerapp update ran");
    let suffix = update.windows(2).find(|w| w[0] == "--revision-suffix").map(|w| w[1].clone());
    let suffix = suffix.expect("a revision suffix");
    assert!("checkout-frontend-eu--".len() + suffix.len() <= 54, "{suffix}");
    assert!(suffix.starts_with("r3f2a9c1d4e5"), "derived from the tag: {suffix}");
    let valid = regex::Regex::new("^[a-z]([a-z0-9]|-[a-z0-9])*$").expect("regex");
    assert!(valid.is_match(&suffix), "{suffix}");
}

/// Deploying the same tag again finds its revision and reports it up to date; a revision of
/// that suffix running another image gets a new, unique suffix instead of Azure's "already
/// exists".
#[test]
fn container_apps_redeploys_of_a_tag_are_up_to_date_or_get_a_new_suffix() {
    let t = container_apps().project();
    run_with(&t, &["deploy", "--tag", TAG]).success();
    // `--no-cache`: the recipe's own check is tested, not pilum's build cache.
    let again = run_with(&t, &["deploy", "--tag", TAG, "--no-cache"]).success();
    let updates = |t: &crate::common::Test| {
        t.calls("az")
            .into_iter()
            .filter(|a| a[..2] == ["containerapp", "update"])
            .collect::<Vec<_>>()
    };
    assert_eq!(updates(&t).len(), 1, "the second deploy updated nothing: {:?}", t.calls("az"));
    let all = format!("{}{}", again.stdout, again.stderr);
    assert!(
        all.contains("revision `web--v1-2-3` already runs `acmecr.azurecr.io/web:v1.2.3`"),
        "{all}"
    );

    // The revision of that suffix now runs another image (the tag was pushed elsewhere).
    let state = t.path().join(".calls/aca-revisions");
    std::fs::write(&state, "web--v1-2-3 acmecr.azurecr.io/old/web:v1.2.3\n").expect("write state");
    run_with(&t, &["deploy", "--tag", TAG, "--no-cache"]).success();
    let last = updates(&t).pop().expect("an update");
    assert!(last.windows(2).any(|w| w == ["--revision-suffix", "v1-2-3-2"]), "{last:?}");
}

/// The deploy waits until Azure reports the new revision provisioned and healthy.
#[test]
fn container_apps_wait_for_the_new_revision_to_be_healthy() {
    let t = container_apps().project();
    run_with(&t, &["deploy", "--tag", TAG]).success();
    let shows: Vec<_> = t
        .calls("az")
        .into_iter()
        .filter(|a| a[..3] == ["containerapp", "revision", "show"])
        .collect();
    assert_eq!(shows.len(), 2, "provisioning, then healthy: {shows:?}");
    assert!(shows[0].windows(2).any(|w| w == ["--revision", "web--v1-2-3"]), "{shows:?}");
}

/// Without `allow_unauthenticated`, neither flag is sent: the service's access is left as it
/// is and the deploy needs no permission to change IAM.
#[test]
fn cloud_run_leaves_public_access_alone_unless_the_field_is_set() {
    let mut case = cloud_run();
    case.files[0].1 = case.files[0].1.replace("  allow_unauthenticated: true\n", "");
    let t = case.project();
    run_with(&t, &["deploy", "--tag", TAG]).success();
    for deploy in t.calls("gcloud").into_iter().filter(|a| a[..2] == ["run", "deploy"]) {
        assert!(!deploy.iter().any(|a| a.contains("allow-unauthenticated")), "{deploy:?}");
    }
    let mut case = cloud_run();
    case.files[0].1 =
        case.files[0].1.replace("allow_unauthenticated: true", "allow_unauthenticated: false");
    let t = case.project();
    run_with(&t, &["deploy", "--tag", TAG]).success();
    let deploys: Vec<_> =
        t.calls("gcloud").into_iter().filter(|a| a[..2] == ["run", "deploy"]).collect();
    assert!(
        deploys.iter().all(|d| d.contains(&"--no-allow-unauthenticated".to_string())),
        "{deploys:?}"
    );
}

/// China regions are in the `aws-cn` partition: ECR is `<account>.dkr.ecr.<region>.amazonaws.com.cn`
/// (the strict `docker` refuses a host of the wrong partition).
#[test]
fn ecs_in_a_china_region_pushes_to_the_amazonaws_com_cn_registry() {
    let mut case = ecs(false);
    case.files[0].1 = case.files[0].1.replace("region: eu-west-1", "region: cn-north-1");
    let t = case.project();
    run_with(&t, &["deploy", "--tag", TAG]).success();
    let docker = transcript(&t, &["docker"]);
    assert!(
        docker.contains("docker push 123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/api:v1.2.3"),
        "{docker}"
    );
}

/// `register-task-definition` does not copy tags: they are read with `--include TAGS` and
/// sent back, so the new revision keeps them.
#[test]
fn ecs_new_task_definitions_keep_the_old_ones_tags() {
    let (t, _, _) = ecs(false).run();
    let file = t.path().join(".pilum/build/ecs/api/eu-west-1-task-definition.json");
    let td: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("task definition written"))
            .expect("JSON");
    assert_eq!(td["tags"], serde_json::json!([{ "key": "team", "value": "payments" }]), "{td}");
}

/// `flyctl auth docker` tokens last five minutes: the login comes right before each push,
/// a retried push included.
#[test]
fn fly_logs_in_to_its_registry_right_before_every_push() {
    let case = fly().fake(
        "docker",
        r#"case "$1" in push) [ -f [ROOT]/.calls/pushed-once ] || { : > [ROOT]/.calls/pushed-once; echo 'unauthorized: token expired' >&2; exit 1; } ;; esac"#,
    );
    let mut case = case;
    case.fakes.retain(|(n, b)| *n != "docker" || b.contains("pushed-once"));
    let t = case.project();
    run_with(&t, &["deploy", "--tag", TAG]).success();
    let calls = transcript(&t, &["docker", "flyctl"]);
    let lines: Vec<&str> = calls.lines().collect();
    let pushes: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("docker push"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(pushes.len(), 2, "{calls}");
    for i in pushes {
        assert_eq!(lines[i - 1], "flyctl auth docker", "{calls}");
    }
}

/// `config_file: temp` sets the key in a copy of the stack file and leaves the checkout's
/// `Pulumi.<stack>.yaml` as it is.
#[test]
fn pulumi_with_a_temporary_config_file_leaves_the_checkout_untouched() {
    let (t, _, _) = pulumi_temp_config().run();
    let committed =
        std::fs::read_to_string(t.path().join("infra/Pulumi.prod.yaml")).expect("stack file");
    assert_eq!(committed, "config:\n  api:image: ghcr.io/acme/api:v1.2.2\n");
    let copy = std::fs::read_to_string(t.path().join(".pilum/build/pulumi/api/Pulumi.prod.yaml"))
        .expect("copy");
    assert_eq!(copy, committed, "the copy starts from the committed file");
    for call in t.calls("pulumi").iter().filter(|a| a[0] != "whoami") {
        assert!(
            call.windows(2).any(|w| w[0] == "--config-file"
                && w[1].ends_with(".pilum/build/pulumi/api/Pulumi.prod.yaml")),
            "{call:?}"
        );
    }
}
