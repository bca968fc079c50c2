// The official `openai` npm client used against `ferry serve`: a plain chat, a streamed
// chat and a chat with an image part. FERRY_URL is the gateway's base URL, FERRY_KEY a
// client key it accepts, FERRY_IMAGE a JPEG file. Prints one line per case and
// "N passed, N failed"; exits 1 on any failure.
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';

const client = new OpenAI({ baseURL: `${process.env.FERRY_URL}/v1`, apiKey: process.env.FERRY_KEY,
                            maxRetries: 0, timeout: 60000 });
let passed = 0, failed = 0;

async function run(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

await run('plain chat', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'ferry', messages: [{ role: 'user', content: 'Say hello in three words.' }],
              max_tokens: 16 })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(typeof data.choices[0].message.content, 'string');
  assert.ok(data.choices[0].message.content.length > 0);
  assert.ok(data.usage.completion_tokens > 0);
  assert.ok(['edge', 'cloud'].includes(response.headers.get('x-ferry-node')));
  assert.ok(response.headers.get('x-ferry-request-id'));
});

await run('streamed chat', async () => {
  const stream = await client.chat.completions.create({
    model: 'ferry', stream: true, stream_options: { include_usage: true }, max_tokens: 24,
    messages: [{ role: 'system', content: 'Be brief.' },
               { role: 'user', content: 'Count from one to ten in words.' }] });
  let text = '', chunks = 0, usage = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.choices.length && chunk.choices[0].delta.content) text += chunk.choices[0].delta.content;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks > 2, `only ${chunks} chunks`);
  assert.ok(text.length > 0);
  assert.ok(usage && usage.completion_tokens > 0, 'no usage chunk');
});

await run('image part', async () => {
  const b64 = readFileSync(process.env.FERRY_IMAGE).toString('base64');
  const { data, response } = await client.chat.completions
    .create({ model: 'ferry', max_tokens: 16,
              messages: [{ role: 'user', content: [
                { type: 'text', text: 'What is in this picture?' },
                { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${b64}` } }] }] })
    .withResponse();
  assert.ok(data.choices[0].message.content.length > 0);
  assert.ok(data.usage.prompt_tokens > 100, `prompt_tokens ${data.usage.prompt_tokens}: image not seen`);
  assert.match(response.headers.get('x-ferry-plan'), /^node=(edge|cloud);img=/);
});

await run('bad key is refused', async () => {
  const bad = new OpenAI({ baseURL: `${process.env.FERRY_URL}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: 'ferry', messages: [{ role: 'user', content: 'x' }] }),
                       (e) => e.status === 401);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
