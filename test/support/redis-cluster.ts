import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type RedisServer, startRedisServer } from './redis-server.ts';

const run = promisify(execFile);

export interface RedisCluster {
  /** A redis-cluster:// URL naming the first node (the client discovers the others). */
  url: string;
  nodes: RedisServer[];
  stop(): Promise<void>;
}

/**
 * A throwaway 3-node Redis Cluster (masters only, no persistence): three redis-servers started
 * with --cluster-enabled, joined by `redis-cli --cluster create`, ready once every node reports
 * cluster_state:ok (polled: the state is what decides, not a time).
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  const nodes = await Promise.all(
    [0, 1, 2].map(() => startRedisServer(['--cluster-enabled', 'yes', '--cluster-node-timeout', '5000'])),
  );
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (const node of nodes) {
      for (;;) {
        const { stdout } = await run('redis-cli', ['-p', String(node.port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        // Paces the asking only: no deadline (the test runner's timeout ends a cluster that never forms).
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `redis-cluster://127.0.0.1:${nodes[0]!.port}`, nodes, stop };
}
