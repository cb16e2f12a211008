import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Chalk } from 'chalk';
import {
  fetchTransport,
  nodeTransport,
  type Transport,
  type TransportResponse,
} from '../client/transport.ts';
import { type LoadedSettings, loadSettings } from '../config/load.ts';
import { apiKeyVars, needsApiKey, PRESETS, suggestedKeyVar } from '../config/presets.ts';
import { describeSource, displayPath } from '../config/sources.ts';
import { endpointUrl } from '../core/endpoint-url.ts';
import { errorMessage, isFlashcardsError } from '../core/errors.ts';
import { dataPaths } from '../core/home.ts';
import { packageFile } from '../core/package-root.ts';
import { publicUrl } from '../core/provider-key.ts';
import { didYouMean } from '../core/suggest.ts';
import { renderTable } from './config.ts';
import type { CommandContext } from './context.ts';
import { settingsInput } from './state.ts';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warn or fail. */
  fix?: string | undefined;
}

export interface DoctorOptions {
  json?: boolean;
  /** Same record as loadSettings' flags. */
  flags?: Record<string, unknown>;
  /** Injected in tests; the global fetch otherwise. */
  fetch?: typeof fetch;
  /** Injected in tests; process.versions.node otherwise. */
  nodeVersion?: string;
}

/**
 * The oldest Node that runs the CLI, as package.json's engines field states it (">=22.14":
 * better-sqlite3's prebuilt driver crashes on 22.12 and 22.13). bin/flashcards.js checks the same
 * before anything loads.
 */
function minNode(): readonly [number, number] {
  const pkg = JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as {
    engines?: { node?: string };
  };
  const [major = 0, minor = 0] = (/(\d+)\.(\d+)/.exec(pkg.engines?.node ?? '') ?? []).slice(1).map(Number);
  return [major, minor];
}
const PROBE_TIMEOUT_MS = 5000;

/**
 * `flashcards doctor`: checks what a first run needs, prints pass/fail with a fix for each
 * failure. Exit 0 when nothing failed (warnings allowed), 1 otherwise. Never prints the key.
 * The provider check also asks whether the provider lists the configured model, from the same
 * `GET /models` answer: a typo fails here, not on the first paid request.
 */
export async function doctor(ctx: CommandContext, opts: DoctorOptions): Promise<number> {
  const checks: CheckResult[] = [
    checkNode(opts.nodeVersion ?? process.versions.node),
    checkDataDir(ctx.home),
  ];
  checks.push(...(await checkDatabases(ctx.home)));
  let loaded: LoadedSettings | undefined;
  try {
    loaded = await loadSettings(settingsInput(ctx, opts.flags));
    const file = loaded.configFile ? displayPath(loaded.configFile, ctx.cwd) : undefined;
    // The key-in-file warning is the API key check's own finding, not a config problem.
    const keyWarning = loaded.apiKeyWarning;
    const other = loaded.warnings.filter((w) => w !== keyWarning);
    checks.push({
      name: 'config',
      status: other.length > 0 ? 'warn' : 'pass',
      detail: `${file ? `valid: ${file}` : 'no config file (defaults)'}${other.length > 0 ? `; ${other.join('; ')}` : ''}`,
    });
  } catch (e) {
    checks.push({
      name: 'config',
      status: 'fail',
      detail: errorMessage(e),
      fix: (isFlashcardsError(e) ? e.hint : undefined) ?? 'fix the value named above',
    });
  }
  if (loaded) {
    checks.push(checkApiKey(loaded));
    // The same transport `process` uses (keep-alive agents, HTTPS_PROXY): what works here works there.
    const transport = opts.fetch ? fetchTransport(opts.fetch) : nodeTransport();
    checks.push(await checkProvider(loaded, transport));
    if (loaded.settings.store) {
      const { checkStore } = await import('./doctor-store.ts');
      checks.push(
        ...(await checkStore(loaded.settings.store, ctx.env['FLASHCARDS_REDIS_PASSWORD'] || undefined)),
      );
    }
  } else {
    const skipped = 'skipped: the configuration is invalid';
    checks.push({ name: 'API key', status: 'skip', detail: skipped });
    checks.push({ name: 'provider', status: 'skip', detail: skipped });
  }

  const failed = checks.filter((c) => c.status === 'fail' || c.status === 'skip').length;
  // The report is the command's result: stdout, table or JSON; the exit code says whether it passed.
  if (opts.json) {
    ctx.io.out(`${JSON.stringify({ ok: failed === 0, checks })}\n`);
  } else {
    const c = new Chalk({ level: ctx.io.outColor ? 1 : 0 });
    const paint: Record<CheckStatus, (s: string) => string> = {
      pass: c.green,
      warn: c.yellow,
      fail: c.red,
      skip: c.dim,
    };
    const rows = checks.map((k) => [k.name, paint[k.status](k.status), k.detail, k.fix ?? '']);
    ctx.io.out(renderTable(['check', 'status', 'detail', 'fix'], rows, ctx.io.outColor));
    ctx.io.out(
      failed === 0
        ? `all ${checks.length} checks passed\n`
        : `${failed} of ${checks.length} checks did not pass\n`,
    );
  }
  return failed === 0 ? 0 : 1;
}

export function checkNode(version: string): CheckResult {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const MIN_NODE = minNode();
  const ok = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
  return {
    name: 'Node.js',
    status: ok ? 'pass' : 'fail',
    detail: `${version}${ok ? '' : ` (needs >= ${MIN_NODE.join('.')})`}`,
    fix: ok ? undefined : `install Node.js ${MIN_NODE.join('.')} or newer`,
  };
}

function checkDataDir(home: string): CheckResult {
  const probe = join(home, `.doctor-${process.pid}`);
  try {
    mkdirSync(home, { recursive: true });
    writeFileSync(probe, 'ok');
    rmSync(probe);
    return { name: 'data directory', status: 'pass', detail: `writable: ${home}` };
  } catch (e) {
    return {
      name: 'data directory',
      status: 'fail',
      detail: `${home} is not writable (${errorMessage(e)})`,
      fix: 'set FLASHCARDS_HOME or --home to a writable directory',
    };
  }
}

async function checkDatabases(home: string): Promise<CheckResult[]> {
  const paths = dataPaths(home);
  const results: CheckResult[] = [];
  for (const [name, file] of [
    ['state.db', paths.stateDb],
    ['cache.db', paths.cacheDb],
  ] as const) {
    if (!existsSync(file)) {
      results.push({ name, status: 'pass', detail: 'not created yet' });
      continue;
    }
    // better-sqlite3 is a native module: load it only when there is a database to look at.
    const { openDatabase } = await import('../db/open.ts');
    try {
      const db = openDatabase(file, { readonly: true });
      try {
        const rows = db.pragma('quick_check') as { quick_check: string }[];
        const problems = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
        results.push(
          problems.length === 0
            ? { name, status: 'pass', detail: `integrity ok: ${file}` }
            : {
                name,
                status: 'fail',
                detail: `${file} is damaged: ${problems.slice(0, 2).join('; ')}`,
                fix: `move it aside (mv ${file} ${file}.bad); a fresh one is created on the next run`,
              },
        );
      } finally {
        db.close();
      }
    } catch (e) {
      results.push({
        name,
        status: 'fail',
        detail: errorMessage(e),
        fix: (isFlashcardsError(e) ? e.hint : undefined) ?? `move it aside (mv ${file} ${file}.bad)`,
      });
    }
  }
  return results;
}

function checkApiKey({ settings, sources, apiKeyInFile }: LoadedSettings): CheckResult {
  const name = 'API key';
  const source = sources['apiKey'];
  // A key left in a file is a leak waiting to happen even while an env variable overrides it.
  if (apiKeyInFile) {
    return {
      name,
      status: 'warn',
      detail:
        source?.kind === 'file'
          ? `set in ${source.detail}`
          : `set in ${apiKeyInFile} (${source ? describeSource(source) : 'another source'} overrides it)`,
      fix: `keep keys out of files: export ${suggestedKeyVar(settings.provider)}=... and delete apiKey from the file`,
    };
  }
  if (settings.apiKey) {
    return { name, status: 'pass', detail: `set (from ${source ? describeSource(source) : 'unknown'})` };
  }
  if (!needsApiKey(settings.provider, settings.baseUrl)) {
    return {
      name,
      status: 'pass',
      detail: `not needed for ${settings.provider} at ${publicUrl(settings.baseUrl)}`,
    };
  }
  const vars = apiKeyVars(settings.provider);
  const where = PRESETS[settings.provider].keyUrl;
  return {
    name,
    status: 'fail',
    detail: `no API key for provider ${settings.provider}; looked in ${vars.join(', ')}`,
    fix: `export ${suggestedKeyVar(settings.provider)}=<your key>${where ? ` (get one at ${where})` : ''}`,
  };
}

async function checkProvider(loaded: LoadedSettings, transport: Transport): Promise<CheckResult> {
  const { settings } = loaded;
  const name = 'provider';
  if (settings.provider === 'mock' || settings.baseUrl.startsWith('mock:')) {
    return { name, status: 'pass', detail: 'mock provider (offline, no network needed)' };
  }
  if (!settings.apiKey && needsApiKey(settings.provider, settings.baseUrl)) {
    return { name, status: 'skip', detail: 'skipped: needs an API key first' };
  }
  const url = endpointUrl(settings.baseUrl, 'models');
  // Credentials in the URL (user:pass@, ?api-key=) are never shown.
  const shown = endpointUrl(publicUrl(settings.baseUrl), 'models');
  const headers: Record<string, string> = settings.apiKey
    ? { Authorization: `Bearer ${settings.apiKey}` }
    : {};
  let response: TransportResponse;
  try {
    response = await transport(url, {
      method: 'GET',
      headers,
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
  } catch (e) {
    const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
    const cause = (e as { cause?: unknown }).cause;
    const why = timedOut ? `no answer within ${PROBE_TIMEOUT_MS / 1000}s` : errorMessage(cause ?? e);
    const local = PRESETS[settings.provider].local || !needsApiKey(settings.provider, settings.baseUrl);
    return {
      name,
      status: 'fail',
      detail: `cannot reach GET ${shown}: ${why}`,
      fix: local
        ? `start the server (${settings.provider === 'ollama' ? 'ollama serve' : 'llama-server'}) or fix baseUrl`
        : 'check your network connection and baseUrl',
    };
  }
  // Read the body in any case, so the connection is released.
  const body = await response.text().catch(() => undefined);
  if (response.status >= 200 && response.status < 300) {
    return checkModel(loaded, `GET ${shown}: HTTP ${response.status}`, modelIds(body));
  }
  const keyVar = settings.apiKeySource ?? suggestedKeyVar(settings.provider);
  if (response.status === 401 || response.status === 403) {
    return {
      name,
      status: 'fail',
      detail: `key rejected: GET ${shown} answered HTTP ${response.status}`,
      fix: `check the key (${keyVar}) is valid for ${settings.provider}`,
    };
  }
  if (response.status === 429) {
    return {
      name,
      status: 'warn',
      detail: `reachable, but rate limited right now (HTTP 429)`,
      fix: 'wait a minute, or lower limiter.rpm / concurrency',
    };
  }
  if (response.status === 404) {
    // Some OpenAI-compatible servers have no models list; the provider answered, so only the model
    // goes unchecked. A base URL without /v1 gives the same 404, and then every request would.
    return {
      name,
      status: 'warn',
      detail: `reachable, but GET ${shown} answered HTTP 404: no models list, so the model ${settings.model} was not checked`,
      fix: 'if runs fail with HTTP 404 too, check baseUrl: most OpenAI-compatible servers expect it to end in /v1',
    };
  }
  return {
    name,
    status: 'fail',
    detail: `GET ${shown} answered HTTP ${response.status}`,
    fix: 'the provider may be down; try again later',
  };
}

/** How many of the listed models a fix names when nothing is close to the configured one. */
const MODELS_SHOWN = 8;

/**
 * The model ids of an OpenAI-compatible `GET /models` answer: `{"data": [{"id": ...}]}`, or the
 * bare array a few servers send. Undefined when the body is not such a list.
 */
export function modelIds(body: string | undefined): string[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body ?? '');
  } catch {
    return undefined;
  }
  const list: unknown = Array.isArray(parsed)
    ? parsed
    : typeof parsed === 'object' && parsed !== null
      ? (parsed as { data?: unknown }).data
      : undefined;
  if (!Array.isArray(list)) return undefined;
  return list.flatMap((m: unknown) => {
    const id = typeof m === 'object' && m !== null ? (m as { id?: unknown }).id : undefined;
    return typeof id === 'string' ? [id] : [];
  });
}

export type ModelMatch = { listed: true; as: string } | { listed: false; suggestion: string | undefined };

/**
 * Whether a provider that lists `ids` serves `model`: listed as is, as Ollama's `name:latest`, or
 * as a variant of a listed model (OpenRouter's `vendor/model:nitro`). When not, the closest listed
 * name: the one listed under a vendor prefix (`gpt-4o-mini` on OpenRouter is `openai/gpt-4o-mini`),
 * else the one other tag of the same model, else a did-you-mean.
 */
export function findModel(model: string, ids: readonly string[]): ModelMatch {
  if (ids.includes(model)) return { listed: true, as: model };
  if (ids.includes(`${model}:latest`)) return { listed: true, as: `${model}:latest` };
  const base = model.replace(/:[^:/]+$/, '');
  if (base !== model && ids.includes(base)) return { listed: true, as: base };
  const vendored = ids.filter((id) => id.endsWith(`/${model}`));
  if (vendored.length === 1) return { listed: false, suggestion: vendored[0] };
  // Another tag of the same model (Ollama's llama3.1:70b when only llama3.1:latest was pulled).
  const tagged = ids.filter((id) => id.replace(/:[^:/]+$/, '') === base);
  if (tagged.length === 1) return { listed: false, suggestion: tagged[0] };
  return { listed: false, suggestion: didYouMean(model, ids) };
}

/** The provider check once `GET /models` answered 2xx: does the provider list the configured model? */
function checkModel(
  { settings, sources }: LoadedSettings,
  answered: string,
  ids: string[] | undefined,
): CheckResult {
  const name = 'provider';
  const model = settings.model;
  if (ids === undefined || ids.length === 0) {
    return {
      name,
      status: 'warn',
      detail: `${answered}, but ${ids === undefined ? 'not a models list' : 'an empty models list'}: the model ${model} was not checked`,
      fix: 'a wrong model name fails the first request of a run; check it with your provider',
    };
  }
  const match = findModel(model, ids);
  if (match.listed) {
    return { name, status: 'pass', detail: `${answered}, lists the model ${match.as}` };
  }
  const source = sources['model'];
  const from = source ? ` (the model comes from ${describeSource(source)})` : '';
  const notListed = `${answered}, but the model ${model} is not among the ${ids.length} it lists`;
  if (settings.provider === 'llamacpp') {
    // llama-server serves the one model it loaded whatever name a request gives.
    return {
      name,
      status: 'warn',
      detail: `${notListed}; llama-server answers with the model it loaded (${ids.slice(0, MODELS_SHOWN).join(', ')}) whatever the name`,
    };
  }
  const shown = ids.slice(0, MODELS_SHOWN).join(', ') + (ids.length > MODELS_SHOWN ? ', ...' : '');
  return {
    name,
    status: 'fail',
    detail: `${notListed}${match.suggestion ? ` (did you mean ${match.suggestion}?)` : ''}`,
    fix: match.suggestion
      ? `use --model ${match.suggestion}${from}`
      : `use a model it lists: ${shown}${from}`,
  };
}
