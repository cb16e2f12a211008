/**
 * The baseline `npm run bench` compares the CLI with: the same two requests per item (analyze,
 * then cards with the analysis in the prompt) sent by nothing but node:http with a keep-alive
 * agent, `concurrency` items at a time. No cache, limiter, breaker, database or deck.
 *
 *   node bench/bare-client.ts <base url> <requests.json> <concurrency>
 *
 * requests.json (written by bench/pipeline.ts): { analyze: string[] (one request body per item),
 * cards: { head: string, tail: string } } where a cards body is head + JSON string of the prompt
 * (the analysis inserted) + tail. Prints {"ms": wall time from start-up to the last answer}.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

const started = performance.timeOrigin;
const [url = '', file = '', concurrencyText = '50'] = process.argv.slice(2);
const bodies = JSON.parse(readFileSync(file, 'utf8')) as {
  analyze: { term: string; body: string }[];
  cards: { head: string; tail: string };
};
const concurrency = Number(concurrencyText);
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
const target = new URL(`${url.replace(/\/+$/, '')}/chat/completions`);

function post(body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          authorization: 'Bearer bench-key',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(Buffer.concat(chunks).toString('utf8'))
            : reject(new Error(`HTTP ${res.statusCode}`)),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function content(answer: string): string {
  return (JSON.parse(answer) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
}

let next = 0;
async function worker(): Promise<void> {
  for (let i = next++; i < bodies.analyze.length; i = next++) {
    const item = bodies.analyze[i]!;
    const analysis = content(await post(item.body));
    JSON.parse(analysis);
    const prompt = `Term: ${item.term}\n\nAnalysis (JSON):\n${analysis}\n\nWrite the flashcards for this term.`;
    JSON.parse(content(await post(`${bodies.cards.head}${JSON.stringify(prompt)}${bodies.cards.tail}`)));
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
agent.destroy();
process.stdout.write(`${JSON.stringify({ ms: Date.now() - started })}\n`);
