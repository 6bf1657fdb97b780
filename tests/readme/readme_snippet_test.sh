#!/usr/bin/env bash
# readme_snippet_test.sh README CXX INCLUDE_DIR LIBBUS_SO BUSD — the README's C++ program, as a
# newcomer pastes it: the first ```cpp block after "From C++" is compiled with
# -Wall -Wextra -Wpedantic -Werror against the public headers and libbus.so, then run against a
# busd (on a bus of its own: "demo" is replaced) and must print the message it published.
set -euo pipefail
readme=$1 cxx=$2 include=$3 lib=$4 busd=$5
work=$(mktemp -d /tmp/bus-readme-XXXXXX)
pid=""
trap '[[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
bus=readme-$$
awk '/^From C\+\+/ {seen=1} seen && /^```cpp$/ {inside=1; next} inside && /^```$/ {exit} inside {print}' "$readme" |
  sed "s/\"demo\"/\"$bus\"/" >"$work/snippet.cpp"
[[ -s "$work/snippet.cpp" ]] || { echo "no \`\`\`cpp block after 'From C++' in $readme" >&2; exit 1; }
grep -q "int main" "$work/snippet.cpp" || { echo "the README's C++ block is not a whole program" >&2; exit 1; }
"$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror -I"$include" -o "$work/snippet" "$work/snippet.cpp" "$lib" \
  -Wl,-rpath,"$(dirname "$lib")" -pthread
"$busd" --bus "$bus" 2>"$work/busd.log" &
pid=$!
for _ in $(seq 100); do grep -q "serving bus" "$work/busd.log" && break; sleep 0.05; done
out=$("$work/snippet")
[[ "$out" == 'orders.eu.created: {"id":42}' ]] || { echo "the snippet printed: $out" >&2; exit 1; }
echo "README snippet: compiled with -Werror, ran: $out"
