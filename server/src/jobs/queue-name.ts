/** The BullMQ queue the lifecycle sweeps run on, also their metrics' `queue` label: apart, so that naming it loads no BullMQ. */
export const LIFECYCLE_QUEUE = 'message-lifecycle';
