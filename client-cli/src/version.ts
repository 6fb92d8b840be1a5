import packageJson from '../../package.json' with { type: 'json' };

/** What the CLI reports as mex-ClientVersion and `--version`. */
export const CLIENT_VERSION = `meshbox-cli/${packageJson.version}`;
export const VERSION = packageJson.version;
