/**
 * One HTTP(S) POST with node:http, for the InfluxDB 1.x write path. Why not fetch: undici's fetch
 * copies a Buffer body before sending it (a second megabyte per 10,000-reading batch) and builds
 * WHATWG streams, Headers and Response objects per request; with it, the write path alone made V8
 * run a full collection every 35,000-100,000 readings (bench/README "Sinks"). Connections are kept alive.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export interface PostResult {
  status: number;
  /** The response body as text (InfluxDB's error message); empty for 204. */
  text: string;
  retryAfter: string | null;
}

/** Responses larger than this are cut: an error body is a sentence, not a download. */
const MAX_RESPONSE_BYTES = 64 * 1024;

export class HttpPoster {
  private readonly http = new HttpAgent({ keepAlive: true, maxSockets: 4 });
  private readonly https = new HttpsAgent({ keepAlive: true, maxSockets: 4 });

  /** Rejects on a network error or when `signal` aborts (the caller maps both to "retry"). */
  post(url: URL, headers: OutgoingHttpHeaders, body: Buffer | string, signal: AbortSignal): Promise<PostResult> {
    const tls = url.protocol === 'https:';
    return new Promise<PostResult>((resolve, reject) => {
      const req = (tls ? httpsRequest : httpRequest)(
        url,
        { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) }, agent: tls ? this.https : this.http, signal },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            if (size < MAX_RESPONSE_BYTES) chunks.push(c);
            size += c.length;
          });
          res.on('end', () => {
            const raw = res.headers['retry-after'];
            resolve({
              status: res.statusCode ?? 0,
              text: Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES).toString('utf8'),
              retryAfter: (Array.isArray(raw) ? raw[0] : raw) ?? null,
            });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}
