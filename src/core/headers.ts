/**
 * Read access to response headers by (case-insensitive) name: all the client, the limiter and
 * the error classifier need. The web `Headers` class fits it; the node:http transport hands out a
 * view over the parsed headers instead of copying them into a `Headers` for every response.
 */
export interface HeaderLookup {
  get(name: string): string | null;
}
