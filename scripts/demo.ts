/**
 * `npm run demo`: the demo laboratory sends a pathology result to the demo GP practice, which
 * polls, downloads (checked byte for byte), and acknowledges; the laboratory's tracking then
 * shows the message acknowledged. Then the folder flow: two results dropped into the
 * laboratory's outbox folder go out with `dispatch`, and the practice's `receive` saves them
 * (with anything else that was waiting for it) into var/demo/incoming, which stays.
 * Every step runs the real `meshbox` CLI with the profiles `npm run setup` wrote. It uses the
 * server those profiles point at (`npm start`); when none is running it starts one as `npm
 * start` does, and stops it afterwards.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { SETTLE_MS } from '../client-cli/src/transfer/dispatch.ts';
import { REPO_ROOT } from '../shared/src/dev-paths.ts';
import { DEMO_MAILBOXES, demoProfilePath } from './demo-mailboxes.ts';
import { portOpen, stopProcess, waitFor } from './services/processes.ts';

const run = promisify(execFile);
const CLI = resolve(REPO_ROOT, 'client-cli/src/main.js');
const [lab, gp] = DEMO_MAILBOXES;
const WORKFLOW = lab.workflows[0];

async function meshbox(mailboxId: string, args: readonly string[]): Promise<string> {
  const shown = args.map((arg) => (/\s/.test(arg) ? `'${arg}'` : arg)).join(' ');
  console.log(`  $ meshbox --profile certs/mailboxes/${mailboxId}.json ${shown}`);
  try {
    const { stdout } = await run(process.execPath, [CLI, '--profile', demoProfilePath(mailboxId), ...args]);
    return stdout.trim();
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(stderr?.trim() || String(error));
  }
}

/** Whether something accepts connections at the URL's host and port. */
function listening(url: URL): Promise<boolean> {
  return portOpen(Number(url.port || 443), url.hostname);
}

/** The server the profiles point at: undefined when one is running, else one started here. */
async function startServerUnlessRunning(url: URL): Promise<ChildProcess | undefined> {
  if (await listening(url)) {
    // Another checkout's server there would be refused as a certificate the CA does not vouch for: said first, what it is.
    console.log(`0. a server answers at ${url.origin}: the demo uses it (\`npm start\` of this checkout, or else another's on the port: stop that, or run \`MESHBOX_PORT=9443 npm run setup\`)`);
    return undefined;
  }
  console.log(`0. no server at ${url.origin}: starting one, as \`npm start\` does (stopped after the demo)`);
  const server = spawn(process.execPath, [resolve(REPO_ROOT, 'server/src/main.ts')], {
    // Listening where the demo will look for it.
    env: { ...process.env, MESHBOX_PORT: url.port || '443', MESHBOX_LOG_LEVEL: process.env.MESHBOX_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  // It listens once Redis and object storage answer (it starts the local ones if need be).
  await waitFor(async () => server.exitCode !== null || (await listening(url)), 60_000, 250);
  if (server.exitCode !== null) throw new Error(`the server exited with code ${server.exitCode}`);
  if (await listening(url)) return server;
  await stopProcess(server.pid!);
  throw new Error(`the server did not start listening at ${url.origin} within a minute`);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

function pathologyResult(): string {
  const now = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  return [
    `MSH|^~\\&|WINPATH|RRV|GPSYS|A81001|${now}||ORU^R01|${now}01|P|2.4`,
    'PID|||9449306621^^^NHS||SMITH^JANE||19800101|F',
    'OBR|1||LAB123456|FBC^Full blood count',
    'OBX|1|NM|HB^Haemoglobin||132|g/L|115-165|N',
    'OBX|2|NM|WBC^White cell count||6.2|10*9/L|4.0-11.0|N',
    'OBX|3|NM|PLT^Platelets||250|10*9/L|150-400|N',
    '',
  ].join('\r');
}

async function main(): Promise<void> {
  for (const mailbox of DEMO_MAILBOXES) {
    if (!existsSync(demoProfilePath(mailbox.id))) throw new Error('no demo profiles: run `npm run setup` first');
  }
  const profile = JSON.parse(await readFile(demoProfilePath(lab.id), 'utf8')) as { url: string };
  // The server the CLI will talk to: MESHBOX_URL comes before a profile's url, as in the CLI.
  const server = await startServerUnlessRunning(new URL(process.env.MESHBOX_URL?.trim() || profile.url));
  const work = await mkdtemp(join(tmpdir(), 'meshbox-demo-'));
  try {
    const resultFile = join(work, 'fbc-result.hl7');
    const result = Buffer.from(pathologyResult());
    await writeFile(resultFile, result);

    console.log(`1. ${lab.name} (${lab.id}) sends a full blood count result to ${gp.name} (${gp.id})`);
    const sent = JSON.parse(
      await meshbox(lab.id, ['send', resultFile, '--to', gp.id, '--workflow', WORKFLOW, '--subject', 'FBC result', '--json']),
    ) as { messageId: string };
    console.log(`   accepted as message ${sent.messageId}`);

    console.log(`2. ${gp.id} polls its inbox`);
    const inbox = JSON.parse(await meshbox(gp.id, ['inbox', '--json'])) as string[];
    if (!inbox.includes(sent.messageId)) throw new Error(`message ${sent.messageId} is not in ${gp.id}'s inbox`);
    console.log(`   ${inbox.length} message(s) waiting, including ${sent.messageId}`);

    console.log(`3. ${gp.id} downloads it`);
    const downloaded = join(work, 'downloaded.hl7');
    await meshbox(gp.id, ['download', sent.messageId, '-o', downloaded]);
    const received = await readFile(downloaded);
    if (!received.equals(result)) throw new Error('the downloaded file differs from the one sent');
    console.log(`   ${received.length} bytes, sha256 ${sha256(received).slice(0, 16)}… identical to what was sent`);

    console.log(`4. ${gp.id} acknowledges it`);
    await meshbox(gp.id, ['ack', sent.messageId]);

    console.log(`5. ${lab.id} tracks the message`);
    const tracking = JSON.parse(await meshbox(lab.id, ['track', sent.messageId, '--json'])) as { status: string };
    if (tracking.status !== 'acknowledged') throw new Error(`tracking says ${tracking.status}, expected acknowledged`);
    console.log(`   status: ${tracking.status}`);

    console.log(`6. ${lab.id}'s laboratory system drops two more results into its outbox folder; dispatch sends them`);
    const outbox = join(work, 'outbox');
    await mkdir(outbox);
    const batch = new Map([
      ['ue-result.hl7', Buffer.from(pathologyResult().replace('FBC^Full blood count', 'UE^Urea and electrolytes'))],
      ['lft-result.hl7', Buffer.from(pathologyResult().replace('FBC^Full blood count', 'LFT^Liver function tests'))],
    ]);
    for (const [name, content] of batch) await writeFile(join(outbox, name), content);
    // dispatch leaves a file alone until it has not changed for a moment (a writer may still be at it).
    await sleep(SETTLE_MS + 200);
    const dispatched = (await meshbox(lab.id, ['dispatch', outbox, '--to', gp.id, '--workflow', WORKFLOW, '--json']))
      .split('\n')
      .map((line) => JSON.parse(line) as { messageId: string; file: string });
    if (dispatched.length !== batch.size) throw new Error(`dispatch sent ${dispatched.length} files, not ${batch.size}`);
    for (const { messageId, file } of dispatched) console.log(`   ${file} sent as message ${messageId}, moved into sent/`);

    console.log(`7. ${gp.id}'s system receives everything waiting into its incoming folder, acknowledging each`);
    // Kept after the demo: what else was waiting for the practice is acknowledged too, and must not be lost.
    const incoming = join(REPO_ROOT, 'var', 'demo', 'incoming');
    await mkdir(incoming, { recursive: true });
    const saved = (await meshbox(gp.id, ['receive', incoming, '--json']))
      .split('\n')
      .map((line) => JSON.parse(line) as { messageId: string; path: string | null });
    for (const { messageId, file } of dispatched) {
      const path = saved.find((message) => message.messageId === messageId)?.path;
      if (!path || !(await readFile(path)).equals(batch.get(file)!)) throw new Error(`${file} (message ${messageId}) did not arrive intact`);
      console.log(`   ${file} arrived intact as ${basename(path)}, with ${messageId}.json beside it`);
    }
    const others = saved.length - dispatched.length;
    if (others > 0) console.log(`   and ${others} other message${others === 1 ? '' : 's'} that were waiting for ${gp.id}`);
    console.log(`   all kept in ${incoming}`);
    console.log('demo complete: sent, received byte-identical, acknowledged; then a folder of results sent and received.');
  } finally {
    await rm(work, { recursive: true, force: true });
    if (server?.pid !== undefined) await stopProcess(server.pid);
  }
}

main().catch((error: unknown) => {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
