import type { z } from 'zod';
import type { ChatMessage, ResponseFormat } from '../client/chat-client.ts';

/** One input row as a stage sees it. */
export interface StageItem {
  term: string;
  type?: string | undefined;
  position?: string | undefined;
  context: Record<string, string>;
}

export interface StageInput {
  item: StageItem;
  /** Validated results of the earlier stages of the same item, by stage name. */
  previous: Readonly<Record<string, unknown>>;
}

/**
 * A pipeline stage: how to ask (messages) and what to accept (one zod schema that is at once the
 * TypeScript type, the local validator and the JSON Schema the provider is asked to follow).
 */
export interface Stage<T = unknown> {
  readonly name: string;
  readonly schema: z.ZodType<T>;
  readonly jsonSchema: Record<string, unknown>;
  /** What is sent as `response_format`: built once per stage, not per request. */
  readonly responseFormat: ResponseFormat;
  /** SHA-256 of the stage name and JSON Schema: stands for the response format in cache keys. */
  readonly schemaDigest: string;
  buildMessages(input: StageInput): ChatMessage[];
}

/** One card as a pipeline makes it; the output writers add the item index and the term. */
export interface CardFields {
  /** Plain-text values by field name, in the pipeline's field order. */
  fields: Record<string, string>;
  tags: string[];
  /** Stable identity of the card across runs (see CardRecord.key). */
  key: string;
}

export interface Pipeline {
  readonly name: string;
  readonly description: string;
  /** Where the definition came from: "built-in" or a file path. */
  readonly source: string;
  /** Changes whenever a prompt or schema changes, so old results are never mixed with new ones. */
  readonly version: string;
  readonly stages: readonly Stage[];
  /** Card field names in order: the note type's fields and the columns of tabular formats. */
  readonly fields: readonly string[];
  /** The pipeline's own default deck and note type, used when the user did not choose one. */
  readonly deck: string | undefined;
  readonly noteType: string | undefined;
  /** Turns an item's stage results into cards for the output writer. */
  toCards(item: StageItem, results: Readonly<Record<string, unknown>>): CardFields[];
}
