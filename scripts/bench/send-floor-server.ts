/**
 * The least a MESH send can cost on meshbox's stack, measured beside meshbox in the
 * small-messages benchmark: a Koa app behind the same mutual TLS that checks the MESH token
 * (HMAC and, in Redis, that it was not used before), stores the message in four plain Redis
 * writes (batched per turn of the event loop, as meshbox's are) (record with payload, inbox, a schedule entry, an audit entry) and answers 202 with an
 * id. Nothing else: no validation, no mailbox or workflow lookup, no lifecycle safety, no
 * metrics, no logging. Usage (its keys are removed on SIGTERM or SIGINT):
 * `node scripts/bench/send-floor-server.ts <port> <server.crt> <server.key> <ca.crt> <redis-url> <setting.json>`
 * where setting.json is `{ "sharedKey": "...", "passwords": { "MAILBOX": "password" } }`.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { secureContextOptions } from '../../server/src/https-server.ts';
import { batchWritesOfEachConnection } from '../../server/src/store/redis-client.ts';
import { parseAuthorizationHeader, tokenHmacMatches } from '../../shared/src/protocol/index.ts';

const [port, cert, key, ca, redisUrl, settingFile] = process.argv.slice(2);
if (!port || !cert || !key || !ca || !redisUrl || !settingFile) {
  throw new Error('usage: send-floor-server.ts <port> <cert> <key> <ca> <redis-url> <setting.json>');
}
const { sharedKey, passwords } = JSON.parse(readFileSync(settingFile, 'utf8')) as { sharedKey: string; passwords: Record<string, string> };
const prefix = `bench-send-floor:${randomUUID()}:`;
// Its commands go to Redis as meshbox's do: those of one turn of the event loop in one write.
const redis = batchWritesOfEachConnection(new Redis(redisUrl));
const TOKEN_TTL_MS = 4 * 60 * 60_000;
let sent = 0;

const app = new Koa();
app.use(async (ctx) => {
  const token = parseAuthorizationHeader(ctx.get('authorization'));
  const password = token && passwords[token.mailboxId];
  if (!token || !password || !tokenHmacMatches(sharedKey, token, password)) return void (ctx.status = 403);
  const fresh = await redis.set(`${prefix}token:{${token.mailboxId}}:${token.nonce}:${token.nonceCount}`, '1', 'PX', TOKEN_TTL_MS, 'NX');
  if (fresh === null) return void (ctx.status = 403);
  const parts: Buffer[] = [];
  for await (const part of ctx.req) parts.push(part as Buffer);
  const payload = Buffer.concat(parts);
  const now = Date.now();
  const messageId = `${new Date(now).toISOString().replace(/\D/g, '').slice(0, 17)}_${(sent++).toString(16).padStart(6, '0')}`;
  const recipient = ctx.get('mex-to');
  await redis.hset(`${prefix}message:{${messageId}}`, {
    sender: token.mailboxId,
    recipient,
    workflowId: ctx.get('mex-workflowid'),
    status: 'accepted',
    createdAt: now,
    size: payload.length,
    payload,
  });
  await Promise.all([
    redis.zadd(`${prefix}inbox:{${recipient}}`, now, messageId),
    redis.zadd(`${prefix}schedule:{${sent % 16}}`, now + 86_400_000, messageId),
    redis.xadd(`${prefix}audit`, '*', 'action', 'send', 'messageId', messageId),
  ]);
  ctx.status = 202;
  ctx.body = { message_id: messageId };
});

const server = createServer(secureContextOptions({ cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8'), ca: readFileSync(ca, 'utf8') }), app.callback());
server.keepAliveTimeout = 65_000;
server.listen(Number(port), '127.0.0.1');
/** Its keys go with it, also when the benchmark is stopped with Ctrl-C (which reaches this process too). */
async function stop(): Promise<void> {
  server.close();
  for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 1000 })) {
    if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]));
  }
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
