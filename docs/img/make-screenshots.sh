#!/usr/bin/env bash
# The screenshots of docs/report.md, drawn by pilum from a copy of examples/monorepo and
# photographed by headless Chromium:
#
#   docs/img/make-screenshots.sh     # writes docs/img/{run-report,graph,history}.png
#
# Needs git and chromium (Debian package: chromium); builds pilum (debug) with cargo.
#
# So that the run report shows what it marks, the copy gets two additions (the example itself
# is unchanged): `docs`'s build fails its first attempt and succeeds on its retry, and a
# `mailer` service whose push fails, so its deploy is skipped (`--keep-going` runs the rest).
# Both sleep a little so their bars are visible next to the example's millisecond steps. The
# graph is drawn after changing `services/db/migrations.sql` and `libs/greeting/` (a path
# `api` watches), with `--only-changed`.
#
# The history timeline needs several deploys over time and a rollback, which the example's
# `shell` services cannot do (they have no rollback hook). So a second copy gets a `site` service
# with a small project recipe that "deploys" by copying files into `.pilum/live/` and rolls back
# by pointing `current` at an earlier copy; it is deployed four times (one failing), `web` three
# times, and `site` is rolled back (about a minute: `PAUSE=0` for a quick, cramped picture).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "make-screenshots.sh needs chromium (Debian package: chromium)" >&2; exit 2; }
command -v git >/dev/null || { echo "make-screenshots.sh needs git" >&2; exit 2; }
cargo build --quiet --bin pilum
PILUM=$ROOT/target/debug/pilum
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

cp -r examples/monorepo "$TMP/monorepo"
cd "$TMP/monorepo"
cat > services/docs/pilum.yaml <<'YAML'
name: docs
recipe: shell
shell:
  steps:
    - name: build
      run: sleep 0.3; if [ -e dist/.tried ]; then mkdir -p dist && cp index.md dist/; else mkdir -p dist && touch dist/.tried && echo "index.md has a broken link" >&2 && exit 1; fi
      tags: [build]
      retries: 1
  deploy: mkdir -p ../../.pilum/docs && cp dist/index.md ../../.pilum/docs/
YAML
mkdir -p services/mailer
cat > services/mailer/pilum.yaml <<'YAML'
name: mailer
recipe: shell
depends_on: [api]
shell:
  build: sleep 0.4
  push: sleep 0.2; echo "registry.example.com refused the push" >&2; exit 1
  deploy: echo never
YAML
export GIT_AUTHOR_NAME=docs GIT_AUTHOR_EMAIL=docs@example.invalid
export GIT_COMMITTER_NAME=docs GIT_COMMITTER_EMAIL=docs@example.invalid
git init -q -b main && git add -A && git commit -q -m example

"$PILUM" deploy -q --keep-going --retry-delay 0.2s -j 2 --report "$TMP/run-report.html" || true
echo "-- applied" >> services/db/migrations.sql
echo "hello, again" >> libs/greeting/greeting.txt
"$PILUM" graph --format html --only-changed --since HEAD > "$TMP/graph.html"

# The history: a second copy of the example with a `site` service of a project recipe.
cp -r "$ROOT/examples/monorepo" "$TMP/history"
cd "$TMP/history"
mkdir -p recipes services/site/public
cat > recipes/site.rhai <<'RHAI'
// A static site "deployed" by copying it to .pilum/live/<service>/<tag>; `current` names the
// live copy, so a rollback points it at an earlier one.
fn recipe() {
    #{
        name: "site",
        description: "Copy a static site into .pilum/live, with a rollback hook",
        fields: [],
        steps: [
            #{ name: "build", tags: ["build"], run: "build" },
            #{ name: "deploy", tags: ["deploy"], run: "deploy" },
        ],
    }
}

fn live(ctx) { `../../.pilum/live/${ctx.service}` }

fn build(ctx) {
    exec::run(["sh", "-c", "sleep 0.3; test ! -e public/broken && rm -rf dist && cp -r public dist"]);
    #{}
}

fn deploy(ctx) {
    let dir = live(ctx);
    exec::run(["sh", "-c", `sleep 0.2; mkdir -p ${dir}/${ctx.tag} && cp -r dist/. ${dir}/${ctx.tag}/ && echo ${ctx.tag} > ${dir}/current`]);
    #{ revision: ctx.tag, url: `https://site.example.com/` }
}

fn rollback(ctx) {
    exec::run(["sh", "-c", `echo ${ctx.to} > ${live(ctx)}/current`]);
    #{ revision: ctx.to, url: `https://site.example.com/` }
}
RHAI
printf 'name: site\nrecipe: site\n' > services/site/pilum.yaml
echo "<h1>hello</h1>" > services/site/public/index.html
git init -q -b main && git add -A && git commit -q -m example
# A pause between deploys, so they spread over the timeline's minimum span of one minute.
ship() { "$PILUM" deploy -q --tag "$1" "${@:2}" || true; sleep "${PAUSE:-10}"; }
ship v1.0.0 site web
echo "<p>news</p>" >> services/site/public/index.html && git commit -qam news
ship v1.1.0 site web
touch services/site/public/broken && git add -A && git commit -qm "a broken page"
ship v1.2.0 site
git rm -q services/site/public/broken && echo "<p>fixed</p>" >> services/site/public/index.html
git commit -qam fixed
echo "<!-- v1.3 -->" >> services/web/static/index.html
git commit -qam "web too"
ship v1.3.0 site web
"$PILUM" rollback -q site || true
"$PILUM" history --limit 0 --html "$TMP/history.html"

shoot() {
  local page=$1 png=$2 size=$3
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$TMP/profile" --window-size="$size" --screenshot="$png" "file://$page" 2>/dev/null
  echo "wrote $png"
}
shoot "$TMP/run-report.html" "$ROOT/docs/img/run-report.png" 1260,860
shoot "$TMP/graph.html" "$ROOT/docs/img/graph.png" 1000,500
shoot "$TMP/history.html" "$ROOT/docs/img/history.png" 1320,260
