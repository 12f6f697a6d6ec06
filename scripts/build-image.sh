#!/usr/bin/env bash
# Builds the service's container image from the Containerfile without an image registry:
# a Debian 12 root made by mmdebstrap (Debian's python3 3.11, python3-venv) is the base,
# the project's wheel and its dependencies' wheels are the build context, and buildah
# builds (chroot isolation: no daemon, no registry, no network).
#
# Usage: scripts/build-image.sh [--wheel FILE] [--out DIR] [--rootfs DIR] [--tag TAG]
#                               [--archive oci|docker|none]
#   --wheel FILE   the project's wheel (default: built from this checkout)
#   --out DIR      where the image archive is written (default: dist/)
#   --archive      oci (default): DIR/spe-VERSION.oci.tar (oci-archive; the OCI format has
#                  no HEALTHCHECK field); docker: DIR/spe-VERSION.docker.tar (keeps it);
#                  none: no archive
#   --rootfs DIR   also unpack the image's root filesystem into DIR (to run with ch-run)
#   --tag TAG      image name in buildah's storage (default: localhost/spe:VERSION)
# Environment: SPE_IMAGE_CACHE (default /var/tmp/spe-image): buildah's storage, the Debian
#   root (made once per package list; delete base-*.tar to refresh it) and pip's cache.
#   SPE_IMAGE_EXTRAS (default snakemake,postgres,celery,slurm): extras of spe installed.
#   SPE_IMAGE_STORAGE_DRIVER (default overlay; vfs where overlay mounts are refused, slower)
# Installs its Debian packages (mmdebstrap, buildah) when missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

wheel="" out="dist" rootfs="" tag="" archive="oci"
while (($#)); do
  case $1 in
    --wheel) wheel=$(realpath "$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rootfs) rootfs=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --archive) archive=$2; shift 2 ;;
    *) echo "build-image: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
case $archive in oci|docker|none) ;; *) echo "build-image: --archive oci|docker|none" >&2; exit 2 ;; esac

cache=${SPE_IMAGE_CACHE:-/var/tmp/spe-image}
extras=${SPE_IMAGE_EXTRAS:-snakemake,postgres,celery,slurm}
mkdir -p "$cache" "$out"
log() { echo "build-image: $(date +%T) $*" >&2; }

missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v buildah >/dev/null || missing+=(buildah)
if ((${#missing[@]})); then
  sudo=(); ((EUID == 0)) || sudo=(sudo)
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
fi

driver=${SPE_IMAGE_STORAGE_DRIVER:-overlay}
ba=(buildah --root "$cache/storage-$driver" --runroot "$cache/run-$driver" --storage-driver "$driver")
# Debian's python3 (the image's, 3.11.2 on bookworm) picks the wheels: environment markers
# such as python_full_version must evaluate as they will in the image.
if [[ ! -x $cache/python/bin/wheel ]]; then  # a current pip; wheel builds sdist-only deps
  /usr/bin/python3 -m venv "$cache/python"
  "$cache/python/bin/python" -m pip install --quiet --upgrade pip wheel setuptools \
    2>>"$cache/pip.log"
fi
python=$cache/python/bin/python
work=$(mktemp -d "$cache/context.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. the wheels: the project's (reproducible: SOURCE_DATE_EPOCH) and its dependencies'
mkdir "$work/wheels"
if [[ -z $wheel ]]; then
  log "building the project's wheel"
  SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --quiet --no-deps -w "$work/wheels" . \
    2>>"$cache/pip.log"
  wheel=$(ls "$work"/wheels/spe-*.whl)
else
  cp "$wheel" "$work/wheels/"
fi
version=$(basename "$wheel" | cut -d- -f2)
tag=${tag:-localhost/spe:$version}
log "collecting the dependencies' wheels (spe[$extras])"
"$python" -m pip wheel --quiet --wheel-dir "$work/wheels" --find-links "$work/wheels" \
  --cache-dir "$cache/pip" "$wheel[$extras]" 2>>"$cache/pip.log" \
  || { tail -n 20 "$cache/pip.log" >&2; exit 1; }

# 2. the base: a Debian 12 root with python3 and python3-venv (and what manylinux wheels
# and Celery expect of a system: libstdc++, the time zone database), made once per list
packages=python3,python3-venv,ca-certificates,libstdc++6,tzdata
base_id=$(echo "$packages" | sha256sum | cut -c1-12)
base_tar=$cache/base-$base_id.tar base=localhost/spe-base:$base_id
if [[ ! -f $base_tar ]]; then
  log "making the Debian root (mmdebstrap, about a minute)"
  mmdebstrap --quiet --variant=essential --include="$packages" --format=tar bookworm \
    "$base_tar.part"
  mv "$base_tar.part" "$base_tar"
  "${ba[@]}" rmi --force "$base" >/dev/null 2>&1 || true
fi
if ! "${ba[@]}" inspect --type image "$base" >/dev/null 2>&1; then
  log "importing the Debian root as $base"
  ctr=$("${ba[@]}" from scratch)
  "${ba[@]}" add --quiet "$ctr" "$base_tar" /
  "${ba[@]}" commit --quiet "$ctr" "$base" >/dev/null
  "${ba[@]}" rm "$ctr" >/dev/null
fi

# 3. the image
log "building $tag"
cp Containerfile "$work/Containerfile"
"${ba[@]}" bud --quiet --isolation chroot --format docker --layers=false \
  --build-arg BASE="$base" --build-arg EXTRAS="$extras" \
  -t "$tag" -f "$work/Containerfile" "$work" >/dev/null

# 4. what leaves the build: an archive for a registry or a runtime, a root for ch-run
if [[ $archive != none ]]; then
  file="$out/spe-$version.$archive.tar"
  rm -f "$file"
  "${ba[@]}" push --quiet "$tag" "$archive-archive:$file:$tag"
  log "wrote $file"
fi
if [[ -n $rootfs ]]; then
  # a container of the image in buildah's storage, kept until the next --rootfs of this
  # tag; ROOTFS links to its root (ch-run mounts it read-only)
  name="rootfs-$(echo "$tag" | tr -c 'a-zA-Z0-9_.\n-' '-')"
  "${ba[@]}" rm "$name" >/dev/null 2>&1 || true
  ctr=$("${ba[@]}" from --pull-never --name "$name" "$tag")
  mnt=$("${ba[@]}" mount "$ctr")
  rm -rf "$rootfs" && ln -s "$mnt" "$rootfs"
  "${ba[@]}" inspect --type image "$tag" > "$rootfs.image.json"
  log "the root filesystem is at $rootfs (its configuration: $rootfs.image.json)"
fi
"${ba[@]}" rmi --prune >/dev/null 2>&1 || true  # earlier builds' untagged images
log "built $tag"
