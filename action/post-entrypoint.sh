#!/bin/sh
# The Docker action's post step (action.yml `post-entrypoint`): the runner passes the main step's
# args, which do not apply here; saving reads INPUT_* and the restore's STATE_* instead.
exec /usr/local/bin/s3cache github-action post
