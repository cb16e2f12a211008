/**
 * A provider's batch API (issue 17): a file of requests uploaded once, answered within a completion
 * window at about half the price. One interface for every shape of it; the OpenAI shape
 * (`/files` + `/batches`, also Groq, Together and custom providers that say they have it) is
 * openai.ts. Every call names what it needs to find its work again after a crash: an upload by
 * its file name, a batch by the `flashcards_tag` in its metadata.
 */

/** One request line of a submission: the chat completion body as the synchronous client sends it. */
export interface RequestLine {
  /** Joins the answer back to its job: never the line's position (providers reorder lines). */
  customId: string;
  /** The JSON body of POST /chat/completions. */
  body: Record<string, unknown>;
}

export type RemoteState =
  | 'validating'
  | 'in_progress'
  | 'finalizing'
  | 'completed'
  | 'failed'
  | 'expired'
  | 'cancelling'
  | 'cancelled';

/** The states after which the provider does no more work on a batch. */
export const FINAL_STATES: ReadonlySet<RemoteState> = new Set([
  'completed',
  'failed',
  'expired',
  'cancelled',
]);

export interface RemoteBatch {
  id: string;
  state: RemoteState;
  /** The provider's request counts, for the progress display. */
  counts: { total: number; completed: number; failed: number };
  /** Answers (one JSON line each), once there are any: complete, expired and cancelled batches may have some. */
  outputFileId: string | undefined;
  /** Lines that failed, in the same line format. */
  errorFileId: string | undefined;
  /** Why the whole batch failed (state `failed`), as the provider says it. */
  errors: string | undefined;
  metadata: Record<string, string>;
  /** Seconds since the epoch, as the provider says. */
  createdAt: number | undefined;
}

/** One line of an output or error file, joined by customId. */
export interface ResultLine {
  customId: string;
  /** The HTTP status of that request (200 for an answer); 0 when the line says none. */
  statusCode: number;
  /** The chat completion body (as a synchronous call returns it) when statusCode is 200. */
  body: unknown;
  /** What went wrong, for a line that is not an answer. */
  error: { code: string; message: string } | undefined;
}

export interface BatchApiAdapter {
  /** For messages: "OpenAI batch API at https://api.openai.com/v1". */
  readonly describe: string;
  /** Uploads a JSONL file of request lines (purpose batch); resolves with the file's id. */
  upload(fileName: string, lines: readonly RequestLine[], signal: AbortSignal): Promise<string>;
  /** A file uploaded earlier under `fileName` (a run killed after its upload), if the provider lists it. */
  findUpload(fileName: string, signal: AbortSignal): Promise<string | undefined>;
  /** Creates the batch over an uploaded file; `metadata` carries the tag `findBatch` looks for. */
  create(fileId: string, metadata: Record<string, string>, signal: AbortSignal): Promise<RemoteBatch>;
  /** A batch created earlier with `metadata.flashcards_tag === tag` (a run killed before it saw the answer). */
  findBatch(tag: string, signal: AbortSignal): Promise<RemoteBatch | undefined>;
  status(id: string, signal: AbortSignal): Promise<RemoteBatch>;
  /** A file's raw content (an output or error file), saved before it is parsed. */
  download(fileId: string, signal: AbortSignal): Promise<string>;
  /** Parses an output or error file; lines it cannot read are skipped and counted. */
  parseResults(text: string): { lines: ResultLine[]; unreadable: number };
  cancel(id: string, signal: AbortSignal): Promise<RemoteBatch>;
}

/** How many request lines and bytes one submission may hold (OpenAI: 50,000 and 200 MB). */
export interface SubmissionLimits {
  maxRequests: number;
  maxBytes: number;
}

export const OPENAI_LIMITS: SubmissionLimits = { maxRequests: 50_000, maxBytes: 200 * 1024 * 1024 };
