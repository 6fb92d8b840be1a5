import { once } from 'node:events';
import { daysLeft, EXPIRY_WARNING_DAYS, expiryPhrase } from '../../shared/src/pki/validity.ts';
import { createApp } from './app.ts';
import { resolveBackends } from './backends.ts';
import { ConfigError, loadConfig, SecretKeyMismatchError, SettingsDisagreeError, suspectedTypos, typoWarning } from './config.ts';
import { atStartOnRedis, BackendUnreachableError, connect } from './connections.ts';
import { clientOverLimitReporter, closeConnectionsAfterAnswers, closeConnectionsNotAnswering, connectionRefusalReporter, createMeshServer, handshakeFailureReporter, rawAnswerReporter } from './https-server.ts';
import { LIFECYCLE_QUEUE } from './jobs/queue-name.ts';
import { PendingWork } from './http/pending-work.ts';
import { createServerLogger } from './logging.ts';
import { Metrics } from './metrics.ts';
import { connectionsFitOpenFileLimit, DESCRIPTORS_BESIDE_CONNECTIONS, openFileLimit } from './open-file-limit.ts';
import { reloadRevocationList } from './revocation-list.ts';
import { redisKeys } from './store/keys.ts';
import { ProcessSettingsStore, REPORT_EVERY_MS } from './store/process-settings.ts';
import { describeRedisTarget } from './store/redis-client.ts';

const SHUTDOWN_DEADLINE_MS = 30_000;
/** After the deadline, how long closing the backends may take before the process exits regardless. */
const SHUTDOWN_GRACE_MS = 10_000;
/** At a stop, how long a connection without a request (one just made, its first request on the way) is given before it is closed. */
const FIRST_REQUEST_GRACE_MS = 2_000;

async function main(): Promise<void> {
  const configured = loadConfig();
  const config = await resolveBackends(configured);
  const logger = createServerLogger(config.logLevel);
  for (const typo of suspectedTypos(process.env)) logger.warn(typo, typoWarning(typo));
  if (!configured.redisUrl) {
    logger.warn('MESHBOX_REDIS_URL and MESHBOX_S3_ENDPOINT not set: running on the local development services, not for production');
  }
  const fileLimit = openFileLimit();
  if (!connectionsFitOpenFileLimit(config.maxConnections, fileLimit)) {
    logger.warn(
      { maxConnections: config.maxConnections, openFileLimit: fileLimit, besideConnections: DESCRIPTORS_BESIDE_CONNECTIONS },
      'MESHBOX_MAX_CONNECTIONS leaves too few of the open-file limit for Redis, object storage and files: raise the limit (ulimit -n, LimitNOFILE, a container ulimit) or lower MESHBOX_MAX_CONNECTIONS',
    );
  }
  const connections = await connect(config, logger);
  // Under another key every mailbox would be unreadable: each request and send a 503.
  if (!(await atStartOnRedis(config, connections.services.mailboxes.secretKeyMatches({ claimEmpty: true })))) {
    await connections.close();
    throw new SecretKeyMismatchError(process.env, config.redisPrefix, 'start the server with the MESHBOX_SECRET_KEY they were registered with');
  }
  const processSettings = new ProcessSettingsStore(connections.redis, redisKeys(config.redisPrefix), config.sharedSettings, config.mailboxCacheMs, config.sharedSecrets);
  const disagreements = await atStartOnRedis(config, processSettings.join());
  if (disagreements.length > 0) {
    await connections.close();
    throw new SettingsDisagreeError(disagreements, config.redisPrefix);
  }
  // Missed reports (Redis away) only make this process look gone to one starting meanwhile.
  const reporting = setInterval(() => void processSettings.report().catch(() => undefined), REPORT_EVERY_MS);
  const metrics = new Metrics(config.role === 'api' ? undefined : { name: LIFECYCLE_QUEUE, counts: () => connections.schedule.counts(new Date()) });
  metrics.serverCertificate(config.certificateNotAfter);
  const { replicas } = connections.services;
  if (replicas.required && config.role !== 'worker') metrics.replicaConfirmation(() => replicas.behind);
  const certificateDaysLeft = daysLeft(config.certificateNotAfter, new Date());
  if (certificateDaysLeft <= EXPIRY_WARNING_DAYS) {
    logger.warn(
      { notAfter: config.certificateNotAfter.toISOString(), daysLeft: certificateDaysLeft },
      `the server's certificate (MESHBOX_TLS_CERT) ${expiryPhrase(certificateDaysLeft)}: clients refuse it then; issue a new one and restart`,
    );
  }
  const pendingWork = new PendingWork();
  const app = createApp(connections.services, logger, { metrics, pendingWork, healthOnly: config.role === 'worker' });
  const server = createMeshServer(app, config.tls, {
    timeouts: config.clientTimeouts,
    maxConnections: config.maxConnections,
    onHandshakeFailed: handshakeFailureReporter(logger, metrics),
    onConnectionRefused: connectionRefusalReporter(logger, metrics, config.maxConnections),
    maxConnectionsPerClient: config.maxConnectionsPerClient,
    onClientOverLimit: clientOverLimitReporter(logger, metrics, config.maxConnectionsPerClient),
    onAnsweredRaw: rawAnswerReporter(logger, metrics),
  });
  if (config.role !== 'api') await atStartOnRedis(config, connections.startWorker(logger, metrics, { leaseMs: config.lifecycleLeaseMs }));
  const stopCrlReload = config.revocationList
    ? reloadRevocationList(server, config.tls, config.revocationList, {
        intervalMs: config.crlReloadMs,
        logger,
        onLoaded: ({ nextUpdate }) => metrics.revocationListLoaded(nextUpdate),
      })
    : () => {};
  server.listen(config.port, config.host);
  await once(server, 'listening').catch(async (error: NodeJS.ErrnoException) => {
    // Its settings withdrawn at once: left on record, they would refuse a deployment's processes
    // started meanwhile for half a minute, in this process's name. Its worker finishes its job.
    stopCrlReload();
    clearInterval(reporting);
    await processSettings.withdraw().catch(() => undefined);
    await connections.close().catch(() => undefined);
    const why =
      error.code === 'EADDRINUSE'
        ? 'the port is in use (another meshbox already running? or give another MESHBOX_PORT: `MESHBOX_PORT=9443 npm run setup` points the demo profiles at it)'
        : error.code === 'EACCES'
          ? 'not allowed (a port below 1024 needs privileges)'
          : error.message;
    throw new ConfigError(`cannot listen on ${config.host}:${config.port} (MESHBOX_HOST, MESHBOX_PORT): ${why}`);
  });
  logger.info(
    { role: config.role, url: `https://${config.host}:${config.port}/messageexchange`, redis: describeRedisTarget(config), s3: config.s3.endpoint },
    'meshbox listening',
  );

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    const deadline = setTimeout(() => {
      logger.warn('shutdown deadline passed; closing remaining connections');
      server.closeAllConnections();
      // Node's HTTP layer does not know one still in its TLS handshake.
      closeConnectionsNotAnswering(server);
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    // A job stuck on an unanswering backend, or Redis away, would hold the exit for ever: the
    // supervisor would see a stop that never ends. Past this, the process goes (exit 1).
    const lastResort = setTimeout(() => {
      logger.error('shutdown did not finish (a backend not answering?): exiting anyway');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS + SHUTDOWN_GRACE_MS);
    lastResort.unref();
    stopCrlReload();
    server.close();
    closeConnectionsAfterAnswers(server);
    setTimeout(() => closeConnectionsNotAnswering(server), FIRST_REQUEST_GRACE_MS).unref();
    await once(server, 'close');
    await pendingWork.settled();
    clearInterval(reporting);
    await processSettings.withdraw().catch(() => undefined);
    await connections.close();
    logger.info('stopped');
  };
  // Every time: a signal repeated while stopping (a supervisor's retry, a second Ctrl-C) must not
  // take Node's default action, which would end the process mid-request.
  process.on('SIGTERM', (signal) => void stop(signal));
  process.on('SIGINT', (signal) => void stop(signal));
  // A defect that escapes every handler (an event listener that throws) leaves a state nobody
  // planned for: the process stops, but as at SIGTERM, finishing the requests in flight (whose
  // writes are each atomic) rather than cutting them off, and exits 1 for its supervisor.
  const failed = (error: unknown, origin: string): void => {
    logger.fatal({ err: error, origin }, 'uncaught error: stopping');
    process.exitCode = 1;
    void stop(origin);
  };
  process.on('uncaughtException', (error, origin) => failed(error, origin));
  process.on('unhandledRejection', (reason) => failed(reason, 'unhandledRejection'));
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof BackendUnreachableError) {
    console.error(`meshbox: ${error.message}`);
  } else {
    console.error('meshbox: failed to start:', error);
  }
  // A misspelt setting is most likely why (its default used instead): the warning would otherwise come only once started.
  for (const typo of suspectedTypos(process.env)) console.error(`meshbox: ${typoWarning(typo)}`);
  process.exit(1);
});
