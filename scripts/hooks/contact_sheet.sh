#!/bin/sh
# An `end` hook: once every frame of the job is done, lay them out as one contact sheet with ffmpeg.
#
#   render add shot.blend --hook end='sh /mnt/share/hooks/contact_sheet.sh'
#
# Writes RENDERD_OUTPUT/contact_sheet-JOB.png: up to 8 frames a row, each scaled to 160 pixels wide.
set -eu
folder=${RENDERD_OUTPUT:?renderd sets RENDERD_OUTPUT to the folder of the job\'s frames}
job=${RENDERD_JOB:-job}
sheet="$folder/contact_sheet-$job.png"
rm -f "$sheet"  # a sheet from an earlier run is not a frame
first=$(find "$folder" -maxdepth 1 -type f \( -name '*.png' -o -name '*.jpg' \) | sort | head -n 1)
if [ -z "$first" ]; then
    echo "contact_sheet: no frames in $folder" >&2
    exit 1
fi
ext=${first##*.}
count=$(find "$folder" -maxdepth 1 -type f -name "*.$ext" | wc -l)
columns=$(( count < 8 ? count : 8 ))
rows=$(( (count + columns - 1) / columns ))
# the glob sorts by name, which is frame order for zero-padded frame numbers; the hidden name keeps
# the sheet out of the glob until it is whole
ffmpeg -nostdin -v error -y -pattern_type glob -i "$folder/*.$ext" \
    -vf "scale=160:-2,tile=${columns}x${rows}" -frames:v 1 "$folder/.contact_sheet-$job.png"
mv "$folder/.contact_sheet-$job.png" "$sheet"
echo "contact_sheet: $count frames -> $sheet"
