import type { ChatRequest } from '../client/chat-client.ts';
import type { Stage } from '../pipeline/types.ts';
import { validateAnswer } from '../pipeline/validate.ts';
import { invalidResponseError } from '../resilience/index.ts';
import type { Policy } from './policy.ts';

/** How much of a rejected answer goes back to the model with the repair request. */
const maxEchoedChars = 4000;

/**
 * Checks each answer against the stage's schema. The first time an answer is rejected, the next
 * attempt tells the model what was wrong with it (its answer and the reason, then "answer again");
 * later attempts resend that repair request. A rejected answer is an `invalid_response` error, for
 * the retry policy to decide on.
 */
export function validatingWithRepair(stage: Stage): Policy {
  return (next) => {
    let repair: ChatRequest | undefined;
    return async (attempt) => {
      const answer = await next(repair ? { ...attempt, request: repair } : attempt);
      const checked = validateAnswer(stage, answer.content);
      if (checked.ok) return { ...answer, value: checked.value };
      repair ??= repairRequest(attempt.request, answer.content, checked.detail);
      throw invalidResponseError(checked.detail);
    };
  };
}

/** The request again, with the rejected answer and the reason it was rejected: "answer again". */
export function repairRequest(request: ChatRequest, rejected: string, detail: string): ChatRequest {
  return {
    ...request,
    messages: [
      ...request.messages,
      { role: 'assistant', content: rejected.slice(0, maxEchoedChars) },
      {
        role: 'user',
        content: `That answer was rejected: ${detail}. Answer again with JSON that matches the schema exactly.`,
      },
    ],
  };
}
