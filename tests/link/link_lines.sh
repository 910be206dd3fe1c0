#!/bin/sh
# The README's link lines, run as written with the compilers' own drivers (not meson's choice of
# linker): a C program linked with cc and the whole archive needs no libstdc++ (the C++ front end
# references it weakly only) and runs; a C++ program linked with c++ the same way gets tamalloc's
# operator new and delete, and runs link_cxx's checks.
# Arguments: cc, c++, libtamalloc.a, include dir, source dir, work dir.
set -eu
CC=$1 CXX=$2 LIB=$3 INC=$4 SRC=$5 OUT=$6
mkdir -p "$OUT"
$CC -o "$OUT/c_only" "$SRC/link_c_only.c" -I"$INC" -Wl,--whole-archive "$LIB" -Wl,--no-whole-archive -lpthread
if readelf -d "$OUT/c_only" | grep -q 'libstdc++'; then
  echo "link_lines: a C program linked with the archive needs libstdc++:" >&2
  readelf -d "$OUT/c_only" | grep NEEDED >&2
  exit 1
fi
"$OUT/c_only"
$CXX -std=c++17 -o "$OUT/cxx" "$SRC/link_cxx.cpp" -I"$INC" -Wl,--whole-archive "$LIB" -Wl,--no-whole-archive -lpthread
if ! nm "$OUT/cxx" | grep -q ' T _Znwm$'; then
  echo "link_lines: operator new of the C++ program is not the archive's" >&2
  exit 1
fi
"$OUT/cxx"
