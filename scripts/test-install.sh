#!/usr/bin/env bash
# test-install.sh — bus as its users get it, from the build in ${BUILD_DIR:-build}:
#   1. `cmake --install` into a scratch prefix; examples/ built against it with find_package(bus)
#      and with pkg-config, each run against the installed busd (C, C++, and Python through the
#      installed module); the programs must link libbus.so.0, not carry a copy of it.
#   2. `cpack -G DEB`; the package's metadata and files checked with dpkg-deb, unpacked into a
#      scratch root. With INSTALL_DEB=1 (as root; .ci/run on its throwaway machine), it is also
#      installed for real with `apt-get install ./bus_*.deb`, used from /usr (busd, bus, a C
#      program built with pkg-config, `import bus`), and purged again.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build_dir=$(cd "${BUILD_DIR:-build}" && pwd)
work=$(mktemp -d /tmp/bus-install-XXXXXX)
busd_pid=""
deb_installed=0
# On any exit: stop our busd, purge the package if we installed it, remove the scratch files;
# and exit with the script's own status (not that of the last command run here).
cleanup() {
  local rc=$?
  if [[ -n "$busd_pid" ]]; then kill "$busd_pid" 2>/dev/null; wait "$busd_pid" 2>/dev/null || true; fi
  if [[ "$deb_installed" == 1 ]]; then DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq bus >/dev/null 2>&1 || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
say() { echo "test-install: $*"; }
fail() { echo "test-install: FAIL: $*" >&2; exit 1; }

# Starts `$1` (a busd) on bus $2 and waits until it serves it.
start_busd() {
  "$1" --bus "$2" 2>"$work/busd-$2.log" &
  busd_pid=$!
  for _ in $(seq 100); do
    grep -q "serving bus" "$work/busd-$2.log" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "busd did not start: $(cat "$work/busd-$2.log")"
}
stop_busd() {
  kill "$busd_pid" && wait "$busd_pid" || fail "busd did not exit cleanly"
  busd_pid=""
}
# Runs every example binary in $1 against bus $2.
run_examples() {
  for e in pubsub queue_workers request_reply headers embedded_broker; do
    for v in "$e" "${e}_c"; do
      local bus=$2
      [[ $e == embedded_broker ]] && bus="$2-embedded"
      "$1/$v" "$bus" >"$work/out" 2>&1 || fail "$1/$v: $(cat "$work/out")"
      [[ $(readelf -d "$1/$v") == *"Shared library: [libbus.so.0]"* ]] || fail "$1/$v does not link libbus.so.0"
    done
  done
}

say "1. cmake --install into $work/prefix"
prefix=$work/prefix
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
for f in lib/libbus.so.0 lib/libbus.a include/bus/bus.hpp include/bus/bus.h bin/busd bin/bus \
         lib/cmake/bus/busConfig.cmake lib/cmake/bus/busConfigVersion.cmake lib/pkgconfig/bus.pc \
         lib/python3/dist-packages/bus/__init__.py; do
  [[ -e "$prefix/$f" ]] || fail "not installed: $f"
done
# (Outputs are captured before they are searched: grep -q closing a pipe early fails it under pipefail.)
[[ $(objdump -p "$prefix/lib/libbus.so.0") =~ SONAME\ +libbus\.so\.0 ]] || fail "libbus.so.0 has no SONAME libbus.so.0"
exported=$(nm -DC --defined-only "$prefix/lib/libbus.so.0")
internals=$(grep 'bus::detail::' <<<"$exported" | grep -v 'bus::Subscription::Subscription(std::unique_ptr<bus::detail' || true)
[[ -z "$internals" ]] || fail "libbus.so.0 exports internals: $(head -3 <<<"$internals")"
grep -q ' T bus_connection_connect' <<<"$exported" || fail "libbus.so.0 lacks the C API"

say "   examples with find_package(bus)"
cmake -S examples -B "$work/ex-cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/ex-cmake" -j 2 >/dev/null
say "   examples with pkg-config"
mkdir -p "$work/ex-pc" && cp examples/*.c examples/*.cpp examples/Makefile "$work/ex-pc/"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" make -s -C "$work/ex-pc" >/dev/null

bus=install-$$
start_busd "$prefix/bin/busd" "$bus"
run_examples "$work/ex-cmake" "$bus"
LD_LIBRARY_PATH="$prefix/lib" run_examples "$work/ex-pc" "$bus"
"$prefix/bin/bus" pub --bus "$bus" hello.world "from the installed CLI" >/dev/null || fail "installed bus pub"
PYTHONPATH="$prefix/lib/python3/dist-packages" BUS_LIBRARY="$prefix/lib/libbus.so.0" \
  /usr/bin/python3 examples/pubsub.py "$bus" >"$work/out" 2>&1 || fail "pubsub.py: $(cat "$work/out")"
grep -q "svc.upper: HELLO" "$work/out" || fail "pubsub.py printed: $(cat "$work/out")"
stop_busd
say "   ok: 10 examples x 2 builds, the CLI and the Python module against the installed busd"

say "2. cpack -G DEB"
(cd "$build_dir" && rm -f bus_*.deb && cpack -G DEB >"$work/cpack.log" 2>&1) || fail "cpack: $(tail -20 "$work/cpack.log")"
deb=$(ls "$build_dir"/bus_*.deb)
dpkg-deb --info "$deb" >"$work/info"
for dep in libc6 libstdc++6 libxxhash0 libcpp-httplib; do
  grep -q "Depends:.*$dep" "$work/info" || fail "$deb does not depend on $dep: $(grep Depends "$work/info")"
done
dpkg-deb -x "$deb" "$work/root"
for f in usr/bin/busd usr/bin/bus usr/lib/libbus.so.0 usr/include/bus/bus.h usr/lib/pkgconfig/bus.pc \
         usr/lib/cmake/bus/busConfig.cmake usr/lib/python3/dist-packages/bus/__init__.py; do
  [[ -e "$work/root/$f" ]] || fail "$deb lacks /$f"
done
say "   ok: $(basename "$deb"), $(grep -m1 'Depends:' "$work/info" | cut -c1-160)"

if [[ "${INSTALL_DEB:-0}" == 1 ]]; then
  [[ $(id -u) -eq 0 ]] || fail "INSTALL_DEB=1 needs root"
  [[ $(dpkg-query -W -f='${Status}' bus 2>/dev/null || true) == "install ok installed" ]] &&
    fail "a bus package is installed already: not touching it"
  say "3. apt-get install $deb"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$work/apt.log" 2>&1 || fail "apt-get install: $(tail "$work/apt.log")"
  deb_installed=1
  start_busd /usr/bin/busd "$bus-deb"
  cc -std=c11 -Wall -Werror $(pkg-config --cflags bus) -c examples/pubsub.c -o "$work/pubsub_deb.o"
  c++ -o "$work/pubsub_deb" "$work/pubsub_deb.o" $(pkg-config --libs bus)
  "$work/pubsub_deb" "$bus-deb" >/dev/null || fail "pubsub.c built against /usr"
  /usr/bin/python3 examples/pubsub.py "$bus-deb" >/dev/null || fail "pubsub.py with the packaged module"
  /usr/bin/bus pub --bus "$bus-deb" hello "from /usr/bin/bus" >/dev/null || fail "/usr/bin/bus"
  stop_busd
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq bus >/dev/null 2>&1 || fail "apt-get purge bus"
  deb_installed=0
  say "   ok: installed, used from /usr (C, Python, CLI) and purged"
fi
say "passed"
