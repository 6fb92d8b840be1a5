import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestFn } from 'ava';
import { type CertificateAndKey, issueServerCertificate } from '../../../shared/src/pki/index.ts';
import { startTestServer, type TestServer } from '../../../test/support/harness.ts';
import { type CliResult, type MailboxFiles, runInProcess, writeMailboxFiles } from './cli-fixture.ts';

/** Answers one request, its body already read. */
export type FakeHandler = (request: IncomingMessage, body: Buffer, response: ServerResponse) => void;

/**
 * Runs `use` against an HTTPS server answering with `handle`: a scripted stand-in for a MESH
 * server (the real one never fails, lies or redirects on cue), trusted by the test profiles
 * because its certificate comes from the test CA.
 */
export async function withFakeServer<T>(ca: CertificateAndKey, handle: FakeHandler, use: (origin: string) => Promise<T>): Promise<T> {
  const certificate = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const fake: Server = createServer({ cert: certificate.certPem, key: certificate.keyPem }, (request, response) => {
    const parts: Buffer[] = [];
    request.on('data', (part: Buffer) => parts.push(part));
    request.on('end', () => handle(request, Buffer.concat(parts), response));
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  try {
    return await use(`https://127.0.0.1:${(fake.address() as AddressInfo).port}`);
  } finally {
    fake.closeAllConnections();
    fake.close();
  }
}

/** What a test file scripting fake servers works with. */
export interface ScriptedSetting {
  /** A real test server: its CA signs the fakes' certificates and the mailbox's, and the CLI trusts it. */
  readonly server: TestServer;
  readonly work: string;
  /** A mailbox with its profile in `work`. */
  readonly mailbox: MailboxFiles;
}

/** What a test file scripting fake servers calls, once its setting is made. */
export interface ScriptedHelpers {
  /** Runs `use` against a fake server answering with `handle`, its certificate from the setting's CA. */
  readonly withFakeServer: <T>(handle: FakeHandler, use: (origin: string) => Promise<T>) => Promise<T>;
  /** The CLI in this process, with the setting's mailbox profile, against `origin`. */
  readonly cli: (origin: string, args: readonly string[], cwd: string) => Promise<CliResult>;
}

/** Registers the file's before and after hooks; `ready` is given the setting once it is made. */
export function prepareScriptedSetting(test: TestFn, folderPrefix: string, ready: (setting: ScriptedSetting) => void): ScriptedHelpers {
  let made: ScriptedSetting | undefined;
  const setting = (): ScriptedSetting => {
    if (!made) throw new Error('the scripted setting is made in the before hook');
    return made;
  };
  test.before(async () => {
    const server = await startTestServer();
    const work = await mkdtemp(join(tmpdir(), folderPrefix));
    made = { server, work, mailbox: await writeMailboxFiles(server, await server.createMailbox(), join(work, 'profiles')) };
    ready(made);
  });
  test.after.always(async () => {
    await made?.server.close();
    if (made) await rm(made.work, { recursive: true, force: true });
  });
  return {
    withFakeServer: (handle, use) => withFakeServer(setting().server.ca, handle, use),
    cli: (origin, args, cwd) => runInProcess(['--profile', setting().mailbox.profile, '--url', origin, ...args], { cwd }),
  };
}
