#!/usr/bin/env bash
# Builds the orca container image offline from an orca binary cargo built
# on this machine, as an OCI image layout, and prints its size.
#
#   scripts/image.sh [BINARY [IMAGE [OUT_DIR]]]
#
#   BINARY   the orca binary ($ORCA_BIN, default target/release/orca)
#   IMAGE    name:tag ($IMAGE, default orca:dev); the image is also
#            tagged name:<crate version>
#   OUT_DIR  where the layout goes ($IMAGE_OUT, default target/image):
#            OUT_DIR/oci, refs <tag> and <crate version>
#
#   $IMAGE_WORK        buildah's storage and the staged root (default: a
#                      temporary directory, removed at the end)
#   $SOURCE_DATE_EPOCH the time of the image and of every file in it
#                      (default: the last commit's, else 0)
#
# It stages the root the Dockerfile's `rootfs` stage assembles (the
# binary, the shared libraries ldd names for it at their paths, the host's
# CA bundle, passwd/group with orca 65532, /tmp 1777) in a build context of
# its own and builds the Dockerfile's `prebuilt` target with buildah (vfs
# storage under IMAGE_WORK, chroot isolation, its own policy and registry
# configuration: no system configuration used, no base image, nothing
# downloaded), then pushes it to the layout. Run it as root (buildah's vfs
# storage keeps the files' owners).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
  echo "image.sh: $*" >&2
  exit 1
}

bin=${1:-${ORCA_BIN:-$repo/target/release/orca}}
image=${2:-${IMAGE:-orca:dev}}
out=${3:-${IMAGE_OUT:-$repo/target/image}}

for tool in buildah umoci; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found: \`make deps\` installs it (apt-get install buildah umoci skopeo)"
done
command -v ldd >/dev/null 2>&1 || die "ldd not found (package libc-bin)"
[ -f "$bin" ] && [ -x "$bin" ] || die "no orca binary at $bin: build it first (cargo build -p orca --release)"
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || die "no CA bundle at $ca (package ca-certificates)"

# name:tag, the tag after the last colon that is not part of a registry's
# host:port.
name=$image tag=dev
case ${image##*/} in
  *:*) name=${image%:*} tag=${image##*:} ;;
esac
version=${VERSION:-$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)}
[ -n "$version" ] || die "no version in $repo/Cargo.toml"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || true)
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
fi
case $SOURCE_DATE_EPOCH in
  '' | *[!0-9]*) die "SOURCE_DATE_EPOCH is not a number of seconds: $SOURCE_DATE_EPOCH" ;;
esac

if [ -n "${IMAGE_WORK:-}" ]; then
  work=$IMAGE_WORK
  mkdir -p "$work"
  rm -rf "$work/context" "$work/unpacked"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/orca-image.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
work=$(cd "$work" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- the root -------------------------------------------------------------
root=$work/context/rootfs
install -D -m 0755 "$bin" "$root/usr/local/bin/orca"
# Each library at the path ldd names (the dynamic loader too),
# dereferenced: the root has no symlinks. A static binary has none.
if ldd_out=$(ldd "$bin" 2>&1); then
  if grep -q 'not found' <<<"$ldd_out"; then
    die "ldd cannot find a library of $bin:"$'\n'"$ldd_out"
  fi
  for lib in $(grep -o '/[^ ]*' <<<"$ldd_out"); do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
elif ! grep -q -e 'not a dynamic executable' -e 'statically linked' <<<"$ldd_out"; then
  die "ldd $bin failed:"$'\n'"$ldd_out"
fi
install -D -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'orca:x:65532:65532:orca:/nonexistent:/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'orca:x:65532:' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
install -d -m 1777 "$root/tmp"
chmod 0755 "$root" "$root/etc" "$root/etc/ssl" "$root/etc/ssl/certs"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# --- buildah, with nothing from the system's configuration ----------------
conf=$work/conf
mkdir -p "$conf" "$work/tmp"
printf '%s\n' '{"default":[{"type":"insecureAcceptAnything"}]}' >"$conf/policy.json"
: >"$conf/registries.conf"
: >"$conf/containers.conf"
printf '%s\n' '[storage]' 'driver = "vfs"' "graphroot = \"$work/storage\"" \
  "runroot = \"$work/run\"" >"$conf/storage.conf"
export CONTAINERS_REGISTRIES_CONF=$conf/registries.conf
export CONTAINERS_CONF=$conf/containers.conf
export CONTAINERS_STORAGE_CONF=$conf/storage.conf
export BUILDAH_ISOLATION=chroot
export TMPDIR=$work/tmp
bah() {
  buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"
}

bah bud --quiet --isolation chroot --pull-never --target prebuilt \
  --signature-policy "$conf/policy.json" \
  --timestamp "$SOURCE_DATE_EPOCH" --identity-label=false \
  --build-arg "VERSION=$version" \
  -f "$repo/Dockerfile" -t "$name:$tag" -t "$name:$version" \
  "$work/context" >/dev/null

layout=$out/oci
rm -rf "$layout"
for t in "$tag" "$version"; do
  bah push --quiet --signature-policy "$conf/policy.json" "$name:$tag" "oci:$layout:$t"
done
bah rmi --all >/dev/null 2>&1 || true

# --- its size -------------------------------------------------------------
# The manifest of <tag>, from index.json; the sum of its layers' sizes.
manifest=$(tr -d ' \n\t' <"$layout/index.json" |
  grep -o '{[^{}]*"digest":"sha256:[0-9a-f]*"[^{}]*{[^{}]*"org.opencontainers.image.ref.name":"'"$tag"'"' |
  grep -o 'sha256:[0-9a-f]*' | head -n1)
[ -n "$manifest" ] || die "no manifest for $tag in $layout/index.json"
compressed=$(tr -d ' \n\t' <"$layout/blobs/sha256/${manifest#sha256:}" |
  sed 's/.*"layers":\[//; s/\].*//' | grep -o '"size":[0-9]*' | cut -d: -f2 |
  awk '{ s += $1 } END { print s + 0 }')
msg=$(umoci raw unpack --rootless --image "$layout:$tag" "$work/unpacked" 2>&1) ||
  die "umoci raw unpack $layout:$tag failed:"$'\n'"$msg"
# The unpacked root: the sum of its files' sizes.
unpacked=$(find "$work/unpacked" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
files=$(find "$work/unpacked" -type f | wc -l)
rm -rf "$work/unpacked"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "image:             $name:$tag, $name:$version"
echo "layout:            oci:$layout:$tag ($manifest)"
echo "compressed layers: $compressed bytes ($(mib "$compressed"))"
echo "unpacked root:     $unpacked bytes ($(mib "$unpacked")), $files files"
