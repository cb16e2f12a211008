/**
 * Endpoint URLs made from a provider's base URL. A base URL may carry a query string that every
 * request needs (Azure OpenAI: `.../openai/deployments/d?api-version=2024-10-21`), so an endpoint
 * is a path segment appended to the base *path*, with the query kept, never text glued to the end.
 */

/** The base URL cut where its query or fragment begins. */
function splitQuery(baseUrl: string): { path: string; rest: string } {
  const cut = baseUrl.search(/[?#]/);
  return cut === -1 ? { path: baseUrl, rest: '' } : { path: baseUrl.slice(0, cut), rest: baseUrl.slice(cut) };
}

/** The base URL without trailing slashes on its path; the query (and anything after it) untouched. */
export function trimBaseUrl(baseUrl: string): string {
  const { path, rest } = splitQuery(baseUrl);
  return path.replace(/\/+$/, '') + rest;
}

/**
 * `endpointUrl('https://h/v1?api-version=1', 'chat/completions')` is
 * `https://h/v1/chat/completions?api-version=1`. The fragment is dropped: it is never sent.
 */
export function endpointUrl(baseUrl: string, path: string): string {
  const segment = path.replace(/^\/+/, '');
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    // The config refuses such a base URL; a caller that built one anyway gets the same join as text.
    const parts = splitQuery(baseUrl);
    return `${parts.path.replace(/\/+$/, '')}/${segment}${parts.rest.replace(/#.*$/, '')}`;
  }
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/${segment}`;
  url.hash = '';
  return url.toString();
}
