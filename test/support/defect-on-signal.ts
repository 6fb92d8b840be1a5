// Loaded with `node --import` into a server process: SIGUSR2 makes it throw out of an event
// listener, as a defect would, for a test of what the server does then.
process.on('SIGUSR2', () => {
  throw new Error('a defect, staged');
});
