#!/usr/bin/env bash
# End-to-end throughput of `medtune prep` on PubMed baseline XML -> shards, in MB/s of input
# XML. The staged NLM sample (1.8 MB) is copied COPIES times (default 20) so the run is long
# enough to time; dedup is off so every copy is tokenized like new text.
# usage: bench/bench_prep.sh [BUILD_DIR] [COPIES]      (goal: >= 20 MB/s)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
copies="${2:-20}"
shared="${MEDTUNE_SHARED:-$root/../shared}"
sample="$shared/data/pubmed_xml/pubmedsample18n0001.xml"
[ -f "$sample" ] || { echo "bench_prep: $sample is absent" >&2; exit 77; }
tok="$root/.cache/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$tok" ] || tok="$shared/tokenizers/gpt2/tokenizer.json"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/xml"
for i in $(seq -w 1 "$copies"); do cp "$sample" "$tmp/xml/pubmed_$i.xml"; done
bytes=$(cat "$tmp"/xml/*.xml | wc -c)
cat > "$tmp/prep.json" <<JSON
{"tokenizer": "$tok", "inputs": [{"path": "$tmp/xml/*.xml", "format": "pubmed-xml"}],
 "val_fraction": 0.01, "dedup": false, "out_dir": "$tmp/out"}
JSON
start=$(date +%s.%N)
"$build/medtune" prep "$tmp/prep.json" --json > "$tmp/summary.json" 2>/dev/null
end=$(date +%s.%N)
python3 - "$tmp/summary.json" "$bytes" "$start" "$end" "$tok" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
b, t = int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3])
tokens = s["train"]["tokens"] + s["val"]["tokens"]
print(f"bench_prep: {b / 1e6:.1f} MB PubMed XML, {s['documents_kept']} documents, {tokens} tokens "
      f"in {t:.2f} s: {b / 1e6 / t:.1f} MB/s, {tokens / t / 1e3:.0f}k tokens/s (tokenizer {sys.argv[5].rsplit('/', 1)[-1]})")
PY
