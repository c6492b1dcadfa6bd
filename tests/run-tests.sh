#!/usr/bin/env bash
# The README's test command.
#
# Installs what the build and the tests need (Debian; only when something is
# missing and we are root), builds buzon twice -- build/ with warnings as
# errors, build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer
# (LeakSanitizer included) -- runs every meson test (unit, fuzz corpus
# replays, integration) in both, and ends with exactly one line
# "N passed, N failed" summing both runs. Exits non-zero when anything failed.
#
# Extra arguments go to `meson test` (e.g. --suite integration).
set -uo pipefail
cd "$(dirname "$0")/.."

packages=(meson ninja-build pkg-config gcc clang libclang-rt-14-dev libuv1-dev libgnutls28-dev
	  libsqlite3-dev libcrypt-dev libinih-dev libgsasl-dev gsasl python3 swaks curl gnutls-bin fetchmail getmail6 isync libsasl2-modules
	  libfiu-dev fiu-utils mutt libnet-ssleay-perl libio-socket-ssl-perl)

passed=0
failed=0
skipped=0

finish() {
	if [ "$skipped" -gt 0 ]; then
		echo "($skipped skipped)"
	fi
	echo "$passed passed, $failed failed"
	if [ "$failed" -gt 0 ] || [ "$passed" -eq 0 ]; then
		exit 1
	fi
	exit 0
}

# 1. Packages: skip apt entirely when everything is there (fast local runs).
if command -v dpkg-query >/dev/null 2>&1; then
	missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "$(id -u)" -eq 0 ]; then
			echo "run-tests: installing ${missing[*]}"
			export DEBIAN_FRONTEND=noninteractive
			if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }; then
				echo "run-tests: apt-get failed" >&2
				failed=$((failed + 1))
				finish
			fi
		else
			echo "run-tests: missing packages (install them as root): ${missing[*]}" >&2
		fi
	fi
fi

# 2. The service user: started as root, buzon serves as `buzon` (the install
# step makes it, as the README's first command does).
if [ "$(id -u)" -eq 0 ] && ! getent passwd buzon >/dev/null; then
	echo "run-tests: creating the service user buzon"
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin buzon || {
		echo "run-tests: cannot create the user buzon" >&2
		failed=$((failed + 1))
		finish
	}
fi

# Sanitizer settings for every process the tests start (meson keeps ours).
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:print_summary=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:print_summary=1"
export LSAN_OPTIONS="print_suppressions=0"

# count_results DIR: adds the results of DIR's last `meson test` to the totals.
count_results() {
	local log="$1/meson-logs/testlog.json" counts
	if [ ! -s "$log" ]; then
		echo "run-tests: $1: no test log" >&2
		failed=$((failed + 1))
		return
	fi
	counts=$(/usr/bin/env python3 - "$log" <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line).get('result', 'ERROR')
    if r in ('OK', 'EXPECTEDFAIL'):
        ok += 1
    elif r == 'SKIP':
        skip += 1
    else:                       # FAIL, UNEXPECTEDPASS, TIMEOUT, ERROR
        bad += 1
        print('run-tests: %s: %s' % (r, json.loads(line).get('name')), file=sys.stderr)
print(ok, bad, skip)
PY
	) || { failed=$((failed + 1)); return; }
	read -r ok bad skip <<<"$counts"
	passed=$((passed + ok))
	failed=$((failed + bad))
	skipped=$((skipped + skip))
}

# run_build DIR OPTIONS...: configures, builds and tests one build directory.
run_build() {
	local dir="$1"
	shift
	if [ -f "$dir/build.ninja" ]; then
		# --reconfigure reads meson_options.txt again: an option added
		# since the directory was set up is known (meson configure would
		# refuse it).
		echo "=== $dir: meson setup --reconfigure $*"
		meson setup --reconfigure "$dir" "$@" || { echo "run-tests: $dir: configure failed" >&2; failed=$((failed + 1)); return; }
	else
		echo "=== $dir: meson setup $*${CC:+ (CC=$CC)}"
		meson setup "$dir" "$@" || { echo "run-tests: $dir: setup failed" >&2; failed=$((failed + 1)); return; }
	fi
	echo "=== $dir: build"
	if ! ninja -C "$dir"; then
		echo "run-tests: $dir: build failed" >&2
		failed=$((failed + 1))
		return
	fi
	echo "=== $dir: test"
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs "${test_args[@]}"
	count_results "$dir"
}

test_args=("$@")

run_build build -Dwerror=true -Dtests=true -Dfailpoints=true

# The sanitizer build uses clang when there is one (a second compiler's
# warnings for free); CC chooses otherwise. The compiler of an existing
# build-asan/ stays as it was set up.
asan_cc=${ASAN_CC:-}
if [ -z "$asan_cc" ]; then
	command -v clang >/dev/null 2>&1 && asan_cc=clang || asan_cc=cc
fi
if [ -f build-asan/build.ninja ]; then
	run_build build-asan -Dsanitizers=true -Dtests=true -Db_lundef=false -Dfailpoints=true
else
	CC="$asan_cc" run_build build-asan -Dsanitizers=true -Dtests=true -Db_lundef=false -Dfailpoints=true
fi

finish
