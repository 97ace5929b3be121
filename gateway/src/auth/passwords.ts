/**
 * Password hashing for MQTT users (scrypt, node:crypto) and token hashing for HTTP bearer tokens.
 * Format: scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>.
 */
import { randomBytes, scrypt as scryptCb, createHash, timingSafeEqual, type ScryptOptions } from 'node:crypto';

function scrypt(password: string | Buffer, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

const N = 16384;
const R = 8;
const P = 1;
const KEYLEN = 32;

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEYLEN, { N, r: R, p: P });
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Constant-time comparison of the derived key; malformed hashes never match. */
export async function verifyPassword(password: string | Buffer, encoded: string): Promise<boolean> {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every((x) => Number.isInteger(x) && x > 0) || n > 1 << 20) return false;
  const salt = Buffer.from(parts[4] as string, 'base64');
  const expected = Buffer.from(parts[5] as string, 'base64');
  if (expected.length === 0) return false;
  const key = await scrypt(password, salt, expected.length, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 });
  return timingSafeEqual(key, expected);
}

/** Bearer tokens are long random strings, so a fast hash is enough; stored as sha256:<hex>. */
export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token).digest('hex')}`;
}

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Constant-time check of a presented token against stored hashes; returns the index that matched. */
export function matchToken(presented: string, hashes: string[]): number {
  const h = Buffer.from(hashToken(presented));
  let found = -1;
  hashes.forEach((stored, i) => {
    const s = Buffer.from(stored);
    // Compare every entry (no early exit) so timing does not reveal which one matched.
    if (s.length === h.length && timingSafeEqual(s, h) && found === -1) found = i;
  });
  return found;
}
