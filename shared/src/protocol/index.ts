export * from './auth-token.ts';
export * from './error-codes.ts';
export * from './headers.ts';
export * from './mailbox-id.ts';
export * from './message-id.ts';
export * from './timestamps.ts';
export * from './types.ts';
export * from './workflow-id.ts';
