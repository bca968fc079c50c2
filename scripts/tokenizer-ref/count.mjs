// count.mjs — the reference token counts for ferry's text-token heuristic
// (src/feat/text.c, checked by tests/test-feat-text.c).
//
// Run once:  cd scripts/tokenizer-ref && npm ci && node count.mjs > ../../data/oracle/text_tokens.csv
//
// Texts (all real, none written for this purpose):
//   license:<name>  paragraphs of /usr/share/common-licenses/<name> (Debian base-files,
//                   present on every Debian system), grouped into chunks of at most
//                   ~1500 bytes at blank lines; offset/length are byte positions.
//   m4a1:<d>.<t>.question / .answer
//                   the question and the logged answer of turn t of dialogue index d of
//                   ../shared/datasets/m4a1/M4A1.json (MIT, see SOURCE.txt there).
// Columns: source,offset,length,fnv1a32,o200k,cl100k — fnv1a32 is the 32-bit FNV-1a hash
// of the text's UTF-8 bytes (the test skips a row whose text changed); o200k and cl100k
// are the token counts of the o200k_base (GPT-4o) and cl100k_base (GPT-4) encodings.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { countTokens as count200 } from 'gpt-tokenizer/encoding/o200k_base';
import { countTokens as count100 } from 'gpt-tokenizer/encoding/cl100k_base';

const here = dirname(fileURLToPath(import.meta.url));
const shared = process.env.FERRY_SHARED || join(here, '..', '..', '..', 'shared');
const licenses = ['Apache-2.0', 'Artistic', 'BSD', 'CC0-1.0', 'GFDL-1.3', 'GPL-2', 'GPL-3',
                  'LGPL-2.1', 'MPL-2.0'];

function fnv1a32(buf) {
  let h = 0x811c9dc5;
  for (const b of buf) { h ^= b; h = Math.imul(h, 0x01000193) >>> 0; }
  return h >>> 0;
}

const rows = [];
function emit(source, offset, bytes) {
  const text = bytes.toString('utf8');
  rows.push([source, offset, bytes.length, fnv1a32(bytes), count200(text), count100(text)]);
}

for (const name of licenses) {
  const buf = readFileSync(join('/usr/share/common-licenses', name));
  // paragraph starts: byte offsets just after "\n\n"
  let start = 0, last = 0;
  for (let i = 0; i + 1 < buf.length; i++) {
    if (buf[i] === 0x0a && buf[i + 1] === 0x0a) {
      const end = i + 2;
      if (end - start > 1500 && last > start) { emit(`license:${name}`, start, buf.subarray(start, last)); start = last; }
      last = end;
    }
  }
  if (buf.length > start) emit(`license:${name}`, start, buf.subarray(start));
}

const m4a1 = JSON.parse(readFileSync(join(shared, 'datasets', 'm4a1', 'M4A1.json'), 'utf8'));
m4a1.forEach((dlg, d) => {
  dlg.interactions.forEach((it, t) => {
    for (const field of ['question', 'answer']) {
      if (typeof it[field] === 'string' && it[field].length)
        emit(`m4a1:${d}.${t}.${field}`, 0, Buffer.from(it[field], 'utf8'));
    }
  });
});

process.stdout.write('source,offset,length,fnv1a32,o200k,cl100k\n');
for (const r of rows) process.stdout.write(r.join(',') + '\n');
