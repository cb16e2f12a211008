import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** True when a redis-server binary is on the PATH (CI installs it; a laptop may not have it). */
export const hasRedis = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

/** Why the Redis tests skip, in one line, when there is no redis-server (never silently). */
export const redisSkip: string | false = hasRedis
  ? false
  : 'redis-server is not installed (apt-get install -y redis-server); CI always runs these';

export interface RedisServer {
  url: string;
  port: number;
  process: ChildProcess;
  /** Freezes the server (SIGSTOP) or lets it go on (SIGCONT), as a stalled host would. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A throwaway redis-server on a free port of 127.0.0.1, no persistence, its files in a temp dir.
 * Resolves once it accepts connections (it prints "Ready to accept connections").
 */
export async function startRedisServer(extra: string[] = [], at?: { port: number }): Promise<RedisServer> {
  const port = at?.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'fc-redis-'));
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
  });
  child.stdout?.resume();
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    process: child,
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGCONT');
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
