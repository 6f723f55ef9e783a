#!/bin/sh
# A `post` hook: copy each chunk's frames elsewhere as soon as they are checked (a review folder,
# a second disk), keeping their names.
#
#   render add shot.blend --hook post='sh /mnt/share/hooks/copy_frames.sh /mnt/review/shot'
set -eu
target=${1:?usage: copy_frames.sh TARGET_FOLDER}
mkdir -p "$target"
# RENDERD_OUTPUT_FILES holds one frame path per line
printf '%s\n' "${RENDERD_OUTPUT_FILES:-}" | while IFS= read -r frame; do
    [ -n "$frame" ] || continue
    cp -p "$frame" "$target/"
done
copied=$(printf '%s\n' "${RENDERD_OUTPUT_FILES:-}" | grep -c . || true)
echo "copy_frames: $copied frame(s) of ${RENDERD_CHUNK:-?} copied to $target"
