import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './mock-server.ts';

/**
 * A stand-in for Anki with the AnkiConnect add-on: the actions `pushToAnkiConnect` uses, answered
 * the way AnkiConnect 6 answers them (`{result, error}`, HTTP 200 even for errors), over an
 * in-memory collection that starts like a fresh Anki profile: deck "Default", note type "Basic".
 */
export interface FakeAnkiConnectOptions {
  /** What `version` answers (default 6). */
  version?: number;
  /** This action answers `{result: null, error: failMessage}`. */
  failAction?: string;
  /** Default: "simulated failure of <action>". */
  failMessage?: string;
  /** This action answers an HTML page instead of JSON, like a different program on the port. */
  htmlAction?: string;
  /** First-field values that addNote refuses although canAddNote accepts them (a template problem in Anki). */
  rejectOnAdd?: string[];
  /**
   * addNotes like AnkiConnect since 2023: when one note fails, none is kept and the answer is an
   * error listing the reasons. Default: like older versions, `null` in place of each failed note's id.
   */
  rollbackAddNotes?: boolean;
}

export interface FakeNote {
  deckName: string;
  modelName: string;
  /** By field name, in the note type's field order. */
  fields: Record<string, string>;
  tags: string[];
}

export interface FakeAnkiConnect {
  url: string;
  requests: Array<{ action: string; params: Record<string, unknown> }>;
  decks: Set<string>;
  /** Note type name -> field names in order. */
  models: Map<string, string[]>;
  notes: FakeNote[];
  close(): Promise<void>;
}

interface NoteParam {
  deckName?: unknown;
  modelName?: unknown;
  fields?: unknown;
  tags?: unknown;
  options?: { allowDuplicate?: unknown; duplicateScope?: unknown };
}

export async function startFakeAnkiConnect(opts: FakeAnkiConnectOptions = {}): Promise<FakeAnkiConnect> {
  const requests: FakeAnkiConnect['requests'] = [];
  const decks = new Set<string>(['Default']);
  const models = new Map<string, string[]>([['Basic', ['Front', 'Back']]]);
  const notes: FakeNote[] = [];
  let nextId = 1_700_000_000_000;

  /** AnkiConnect's createNote checks: the note as stored, or why it cannot be added. */
  const check = (raw: NoteParam): { ok: true; note: FakeNote } | { ok: false; error: string } => {
    const deckName = String(raw.deckName);
    const modelName = String(raw.modelName);
    const fieldNames = models.get(modelName);
    if (![...decks].some((d) => d.toLowerCase() === deckName.toLowerCase())) {
      return { ok: false, error: `deck was not found: ${deckName}` };
    }
    if (!fieldNames) return { ok: false, error: `model was not found: ${modelName}` };
    const given = (typeof raw.fields === 'object' && raw.fields !== null ? raw.fields : {}) as Record<
      string,
      unknown
    >;
    const fields: Record<string, string> = {};
    for (const name of fieldNames) {
      const match = Object.keys(given).find((k) => k.toLowerCase() === name.toLowerCase());
      fields[name] = match === undefined ? '' : String(given[match]);
    }
    const first = fields[fieldNames[0] ?? ''] ?? '';
    if (first.trim() === '') return { ok: false, error: 'cannot create note because it is empty' };
    // Anki's duplicate rule: same note type, same first field; scope "deck" looks in the note's deck only.
    const inDeck = raw.options?.duplicateScope === 'deck';
    const duplicate =
      raw.options?.allowDuplicate !== true &&
      notes.some(
        (n) =>
          n.modelName === modelName &&
          (!inDeck || n.deckName.toLowerCase() === deckName.toLowerCase()) &&
          n.fields[fieldNames[0] ?? ''] === first,
      );
    if (duplicate) return { ok: false, error: 'cannot create note because it is a duplicate' };
    const tags = Array.isArray(raw.tags) ? raw.tags.map(String) : [];
    return { ok: true, note: { deckName, modelName, fields, tags } };
  };

  const addNote = (raw: NoteParam): number => {
    const checked = check(raw);
    if (!checked.ok) throw new Error(checked.error);
    const first = Object.values(checked.note.fields)[0] ?? '';
    if (opts.rejectOnAdd?.includes(first)) {
      throw new Error('The field values you have provided would make an empty question on all cards.');
    }
    notes.push(checked.note);
    return nextId++;
  };

  const actions: Record<string, (params: Record<string, unknown>) => unknown> = {
    version: () => opts.version ?? 6,
    deckNames: () => [...decks],
    createDeck: ({ deck }) => {
      // Like Anki: "A::B" creates "A" too.
      const parts = String(deck).split('::');
      for (let i = 1; i <= parts.length; i++) decks.add(parts.slice(0, i).join('::'));
      return nextId++;
    },
    modelNames: () => [...models.keys()],
    modelFieldNames: ({ modelName }) => {
      const fields = models.get(String(modelName));
      if (!fields) throw new Error(`model was not found: ${String(modelName)}`);
      return fields;
    },
    createModel: ({ modelName, inOrderFields, cardTemplates }) => {
      if (!Array.isArray(inOrderFields) || inOrderFields.length === 0) {
        throw new Error('Must provide at least one field for inOrderFields');
      }
      if (!Array.isArray(cardTemplates) || cardTemplates.length === 0) {
        throw new Error('Must provide at least one card for cardTemplates');
      }
      if (models.has(String(modelName))) throw new Error('Model name already exists');
      models.set(String(modelName), inOrderFields.map(String));
      return { name: modelName, id: nextId++ };
    },
    canAddNotes: ({ notes: list }) => noteList(list).map((n) => check(n).ok),
    addNote: ({ note }) => addNote(note as NoteParam),
    addNotes: ({ notes: list }) => {
      const ids: Array<number | null> = [];
      const errors: string[] = [];
      const before = notes.length;
      for (const n of noteList(list)) {
        try {
          ids.push(addNote(n));
        } catch (e) {
          ids.push(null);
          errors.push((e as Error).message);
        }
      }
      if (opts.rollbackAddNotes && errors.length > 0) {
        notes.length = before;
        throw new Error(`[${errors.map((e) => `'${e}'`).join(', ')}]`);
      }
      return ids;
    },
  };

  const answer = (
    action: string,
    params: Record<string, unknown>,
  ): { result: unknown; error: string | null } => {
    if (action === opts.failAction) {
      return { result: null, error: opts.failMessage ?? `simulated failure of ${action}` };
    }
    const handler = actions[action];
    if (!handler) return { result: null, error: 'unsupported action' };
    try {
      return { result: handler(params), error: null };
    } catch (e) {
      return { result: null, error: (e as Error).message };
    }
  };

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let action = '';
    let params: Record<string, unknown> = {};
    try {
      const body = JSON.parse(await readBody(req)) as { action?: unknown; params?: unknown };
      action = String(body.action);
      if (typeof body.params === 'object' && body.params !== null) {
        params = body.params as Record<string, unknown>;
      }
    } catch {
      action = '';
    }
    requests.push({ action, params });
    if (action !== '' && action === opts.htmlAction) {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><html><body><h1>It works!</h1></body></html>');
      return;
    }
    const reply = action === '' ? { result: null, error: 'request is not JSON' } : answer(action, params);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(reply));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    decks,
    models,
    notes,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function noteList(list: unknown): NoteParam[] {
  if (!Array.isArray(list)) throw new Error('notes must be a list');
  return list as NoteParam[];
}
