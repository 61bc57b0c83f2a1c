//! One test per built-in recipe: `pilum dry-run` runs nothing and shows the commands, then the
//! real run's argv transcript of every fake CLI is pinned (with the dry run's list below it).

use super::containers;
use super::harness::Case;
use super::packages;

fn pin(case: Case) {
    let name = case.name;
    let (_, _, pinned) = case.run();
    insta::assert_snapshot!(name, pinned);
}

macro_rules! recipe_tests {
    ($($test:ident => $case:expr,)*) => {
        $(
            #[test]
            fn $test() {
                pin($case);
            }
        )*
    };
}

recipe_tests! {
    gcp_cloud_run => containers::cloud_run(),
    gcp_cloud_run_job => containers::cloud_run_job(),
    aws_lambda => containers::lambda(),
    aws_ecs_fargate => containers::ecs(false),
    kubernetes => containers::kubernetes(":"),
    azure_container_apps => containers::container_apps(),
    fly => containers::fly(),
    pulumi => containers::pulumi(),
    github_release => packages::github_release(packages::GH, false),
    homebrew => packages::homebrew(),
    npm => packages::npm(),
    pypi => packages::pypi_uv(),
    crates_io => packages::crates_io(),
    nuget => packages::nuget(),
    deb => packages::deb(),
    rpm => packages::rpm(),
    scoop => packages::scoop(),
    chocolatey => packages::chocolatey(),
}

#[test]
fn pypi_with_twine() {
    let (_, _, pinned) = packages::pypi_twine().run();
    insta::assert_snapshot!("pypi-twine", pinned);
}

/// Options beyond each recipe's main case, pinned under their own names.
macro_rules! variant_tests {
    ($($test:ident => $snapshot:literal, $case:expr,)*) => {
        $(
            #[test]
            fn $test() {
                let (_, _, pinned) = $case.run();
                insta::assert_snapshot!($snapshot, pinned);
            }
        )*
    };
}

variant_tests! {
    gcp_cloud_run_canary => "gcp-cloud-run-canary", containers::cloud_run_canary(),
    aws_lambda_alias => "aws-lambda-alias", containers::lambda_alias(),
    azure_container_apps_revisions => "azure-container-apps-revisions", containers::container_apps_revisions(),
    pulumi_temp_config => "pulumi-temp-config", containers::pulumi_temp_config(),
}
