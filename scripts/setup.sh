#!/usr/bin/env bash
# Idempotent setup for Quiver on Debian 12 (run as root, or with sudo available):
#   1. installs the Debian packages the build and the tests need (only the missing ones);
#   2. creates .venv with the pinned Python packages of requirements.txt (only when they changed)
#      and installs the Python SDK (python/) into it in editable mode;
#   3. fetches the s3proxy jar (S3 store tests) into .tools/s3proxy/;
#   4. installs the pinned npm packages of web/ (the dashboard's build) and tests/e2e/ (the
#      dashboard's browser test) with `npm ci` (only when their package-lock.json changed);
#   5. configures and builds Quiver into build/ (incremental; it needs no npm: the built
#      dashboard, web/dist, is committed).
# A second run does nothing slow.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

log() { printf '[setup] %s\n' "$*" >&2; }

DEB_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev libssl-dev libhiredis-dev libcpp-httplib-dev prometheus-cpp-dev libjwt-dev
  clang-14 libclang-rt-14-dev
  curl openssl
  postgresql redis-server
  python3-venv
  chromium
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Java and Maven run s3proxy (the S3 store tests); any installed JDK/JRE 17+ will do.
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# Node 20+ and npm build the dashboard (web/) and run its browser test (tests/e2e/). The
# machine's Node 20 is used when present; Debian's nodejs is the fallback.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Valkey 8 (a second Redis-compatible server the shared-index tests also run against) is in
# Debian 12's backports. Optional: without it those tests run against redis-server only.
if ! command -v valkey-server >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  BACKPORTS=/etc/apt/sources.list.d/quiver-bookworm-backports.list
  if [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ] &&
     ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding Debian bookworm-backports (for valkey-server)"
    echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$BACKPORTS" >/dev/null
    $SUDO apt-get update -qq || true
  fi
  log "installing valkey-server from bookworm-backports"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports valkey-server >/dev/null 2>&1 ||
    log "valkey-server is not available; the shared-index tests will use redis-server only"
fi

PY=${QUIVER_BOOTSTRAP_PYTHON:-python3}
req_hash=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$req_hash" ]; then
  log "creating .venv with $(${PY} --version 2>&1) and requirements.txt"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  echo "$req_hash" > .venv/.requirements.sha256
fi
# The Python SDK (python/, import quiver), in editable mode: only when the venv does not
# already import it from this checkout.
if ! .venv/bin/python -c "import pathlib, sys, quiver
sys.exit(pathlib.Path(quiver.__file__).resolve().parent != pathlib.Path('python/quiver').resolve())" \
    >/dev/null 2>&1; then
  log "installing the Python SDK (python/) in editable mode"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e python
fi

# s3proxy: the real S3-compatible server the S3 store tests run against (a Java jar from
# Maven Central, with its dependencies), kept in the gitignored .tools/s3proxy/.
S3PROXY_VERSION=4.1.0
S3PROXY_JAR=.tools/s3proxy/s3proxy-$S3PROXY_VERSION-jar-with-dependencies.jar
if [ ! -f "$S3PROXY_JAR" ]; then
  log "fetching s3proxy $S3PROXY_VERSION"
  mvn -q -B dependency:copy \
    -Dartifact="org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies" \
    -DoutputDirectory=.tools/s3proxy >&2 ||
    log "could not fetch s3proxy $S3PROXY_VERSION from Maven Central: the S3 store tests need it"
fi

# npm packages, pinned by each folder's package-lock.json: web/ (esbuild, apache-arrow: rebuild
# and check the committed dashboard bundle) and tests/e2e/ (playwright-core, driving Debian's
# chromium). `npm ci` runs only when the lock changed since the last install.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] ||
  log "node $(node --version 2>/dev/null || echo '(none)') is older than 20: playwright-core needs 20+"
for dir in web tests/e2e; do
  lock_hash=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$dir/node_modules/.package-lock.sha256" 2>/dev/null)" != "$lock_hash" ]; then
    log "installing the npm packages of $dir (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$lock_hash" > "$dir/node_modules/.package-lock.sha256"
  fi
done

BUILD_TYPE=${QUIVER_BUILD_TYPE:-RelWithDebInfo}
if [ ! -f build/build.ninja ]; then
  log "configuring build/ ($BUILD_TYPE)"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DQUIVER_PYTHON="$ROOT/.venv/bin/python" -DQUIVER_WARNINGS_AS_ERRORS=ON >/dev/null
fi
log "building"
cmake --build build -- -j"$(nproc)"
if [ ! -f build/demo.db ]; then
  log "generating the demo database build/demo.db"
  .venv/bin/python scripts/make_demo_db.py build/demo.db >&2
fi
log "ready: build/quiver"
