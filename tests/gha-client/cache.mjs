// GitHub's own cache client, @actions/cache (pinned in package.json), as a command, so that the
// integration tests drive `s3cache serve` with the very code a JavaScript action runs. The protocol
// (v1 REST or v2 Twirp) and the server come from the environment, as on a runner: ACTIONS_CACHE_URL,
// ACTIONS_RESULTS_URL, ACTIONS_CACHE_SERVICE_V2, ACTIONS_RUNTIME_TOKEN, RUNNER_TEMP, GITHUB_SERVER_URL.
//
//   node cache.mjs save KEY -- PATH...
//   node cache.mjs restore KEY [RESTOREKEY...] -- PATH...
//
// The toolkit's own log lines (core.info as plain lines, core.warning as `::warning::...`) go to
// stdout as they would on a runner; the last stdout line is the result:
//   save:    RESULT {"cacheId":N}        (N = -1 when the toolkit refused or failed, as saveCache returns)
//   restore: RESULT {"hit":"KEY"} or RESULT {"hit":null}
// An error the toolkit throws (ValidationError, a path that does not exist, ...) exits 2 with
// `NAME: MESSAGE` on stderr; a bad command line exits 64.
import { restoreCache, saveCache } from '@actions/cache';

const USAGE = 'usage: node cache.mjs save KEY -- PATH... | node cache.mjs restore KEY [RESTOREKEY...] -- PATH...';

function parse(argv) {
  const [verb, ...rest] = argv;
  const separator = rest.indexOf('--');
  if (!['save', 'restore'].includes(verb) || separator < 1 || separator === rest.length - 1) {
    return null;
  }
  const [key, ...restoreKeys] = rest.slice(0, separator);
  if (verb === 'save' && restoreKeys.length > 0) {
    return null;
  }
  return { verb, key, restoreKeys, paths: rest.slice(separator + 1) };
}

const command = parse(process.argv.slice(2));
if (command === null) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(64);
}

try {
  let result;
  if (command.verb === 'save') {
    result = { cacheId: await saveCache(command.paths, command.key) };
  } else {
    const hit = await restoreCache(command.paths, command.key, command.restoreKeys);
    result = { hit: hit ?? null };
  }
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  // Explicitly: a keep-alive socket left open by a client library must not keep the test waiting.
  process.exit(0);
} catch (error) {
  process.stderr.write(`${error?.name ?? 'Error'}: ${error?.message ?? error}\n`);
  process.exit(2);
}
