#!/usr/bin/env bash
# Instructions per malloc+free pair, counted by callgrind, for tamalloc (libtamalloc.so) and for
# glibc, jemalloc, mimalloc and tcmalloc, every one run the same way: pairs_loop with LD_PRELOAD.
# Each (allocator, size) runs twice, with N1 and N2 pairs; (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of
# one pair with start-up, warm-up and exit cancelled out. Allocators not installed are skipped.
#   usage: benchmarks/callgrind-pairs.sh [BUILD_DIR]     (default build/compare)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build/compare}
sizes=(16 64 256 1024)
n1=200000
n2=1200000

manifest=$build/benchmarks/manifest.json
field() { sed -n "s/^ *\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" "$manifest" 2>/dev/null | head -n1; }
loop=$(field pairs_loop)
[ -n "$loop" ] || loop=$build/benchmarks/pairs_loop
if [ ! -x "$loop" ]; then
  echo "callgrind-pairs: $loop not built; run: meson setup $build && ninja -C $build" >&2
  exit 2
fi
if ! command -v valgrind >/dev/null; then
  echo "callgrind-pairs: valgrind is not installed (ci/bootstrap installs it)" >&2
  exit 2
fi

# allocator name and the shared object to preload ("" = glibc, nothing preloaded).
libdirs=(/usr/lib/"$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)" /usr/lib64 /usr/lib /usr/local/lib)
find_so() {
  local d n
  for d in "${libdirs[@]}"; do
    for n in "$@"; do
      [ -e "$d/$n" ] && { echo "$d/$n"; return 0; }
    done
  done
  return 1
}
names=() sos=()
add() { names+=("$1"); sos+=("$2"); }
tamalloc_so=$(field tamalloc_shared)
[ -n "$tamalloc_so" ] || tamalloc_so=$build/libtamalloc.so
if [ -e "$tamalloc_so" ]; then add tamalloc "$tamalloc_so"; else echo "tamalloc: skipped, $tamalloc_so not built" >&2; fi
add glibc ""
for spec in "jemalloc libjemalloc.so.2" "mimalloc libmimalloc.so.2" \
            "tcmalloc libtcmalloc_minimal.so.4 libtcmalloc.so.4"; do
  read -r name files <<<"$spec"
  # shellcheck disable=SC2086 # files is a list
  if so=$(find_so $files); then add "$name" "$so"; else echo "$name: skipped, not installed ($files)" >&2; fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Total instructions of one run of pairs_loop SIZE N with the given preload.
instructions() {
  local so=$1 size=$2 n=$3 out=$tmp/cg.out
  rm -f "$out"
  if ! env ${so:+LD_PRELOAD="$so"} valgrind --tool=callgrind --callgrind-out-file="$out" \
      "$loop" "$size" "$n" >"$tmp/log" 2>&1; then
    echo "callgrind-pairs: run failed (${so:-glibc}, size $size, N $n):" >&2
    tail -n 5 "$tmp/log" >&2
    return 1
  fi
  awk '/^summary:/ { print $2; exit } /^totals:/ { t = $2 } END { if (t) print t }' "$out" | head -n1
}

header="| allocator |"
rule="|---|"
for s in "${sizes[@]}"; do header+=" $s B |"; rule+="---:|"; done
rows=()
for i in "${!names[@]}"; do
  row="| ${names[$i]} |"
  for s in "${sizes[@]}"; do
    echo "callgrind-pairs: ${names[$i]}, $s B" >&2
    if a=$(instructions "${sos[$i]}" "$s" "$n1") && b=$(instructions "${sos[$i]}" "$s" "$n2"); then
      row+=" $(awk -v a="$a" -v b="$b" -v d=$((n2 - n1)) 'BEGIN { printf "%.1f", (b - a) / d }') |"
    else
      row+=" FAIL |"
    fi
  done
  rows+=("$row")
done
echo
echo "### Instructions per malloc+free pair (callgrind Ir, (Ir(N=$n2) - Ir(N=$n1)) / $((n2 - n1)), LD_PRELOAD)"
echo
echo "$header"
echo "$rule"
printf '%s\n' "${rows[@]}"
