#!/usr/bin/env bash
# Build the small image root the TES demo and tests run: Debian's static busybox with its
# applets linked, nothing else (no registry is needed). The root is written to DEST, a new
# folder; import it into the image catalog with
#
#   spe image import DEST --name busybox --tag "$(busybox_version)" --alias alpine
#
#   scripts/build-busybox-image.sh DEST
set -euo pipefail
dest="${1:?usage: build-busybox-image.sh DEST}"
bb=/bin/busybox
if ! [[ -e /usr/share/doc/busybox-static && -x $bb ]]; then
  echo "build-busybox-image: needs Debian's busybox-static (scripts/install-test-deps.sh)" >&2
  exit 1
fi
[[ ! -e $dest ]] || { echo "build-busybox-image: $dest exists" >&2; exit 1; }
mkdir -p "$dest/bin" "$dest/etc"
cp "$bb" "$dest/bin/busybox"
for applet in $("$bb" --list); do
  [[ $applet == busybox ]] || ln -s busybox "$dest/bin/$applet"
done
ln -s bin "$dest/sbin"
mkdir -p "$dest/usr"
ln -s ../bin "$dest/usr/bin"
echo "busybox image root in $dest"
