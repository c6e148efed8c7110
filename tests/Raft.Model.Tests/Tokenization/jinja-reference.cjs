// The reference renderer for JinjaReferenceTests: Hugging Face's @huggingface/jinja (transformers.js's chat-template
// engine), loaded from the dist/index.cjs that fetch-tokenizers.sh pinned by SHA-256.
//
//   node jinja-reference.cjs PATH/TO/index.cjs < cases.json > results.json
//
// cases.json: {"templates": [source, ...], "cases": [{"t": template index, "vars": {...}}, ...]}
// results.json: one entry per case, in order: {"text": rendered} or {"error": message}, each string as base64 of its
// UTF-16LE code units (a rendering may hold a lone surrogate, e.g. "🦙"[-1], which JSON readers refuse).
"use strict";
const fs = require("fs");
const { Template } = require(process.argv[2]);
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const u16 = (s) => Buffer.from(s, "utf16le").toString("base64");
const compiled = input.templates.map((source) => {
  try {
    return { template: new Template(source) };
  } catch (e) {
    return { error: u16(String(e && e.message !== undefined ? e.message : e)) };
  }
});
const results = input.cases.map((c) => {
  const t = compiled[c.t];
  if (t.error !== undefined) return { error: t.error, syntax: true };
  try {
    return { text: u16(t.template.render(c.vars)) };
  } catch (e) {
    return { error: u16(String(e && e.message !== undefined ? e.message : e)) };
  }
});
process.stdout.write(JSON.stringify(results));
