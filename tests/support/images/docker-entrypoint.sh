#!/bin/sh
# Entrypoint of the local redis test image. It behaves like the official redis image's
# docker-entrypoint.sh (7.0) so that one container spec works with both images: a .conf or an
# option as first argument means redis-server; redis-server started as root drops to the redis
# user (uid 999) after taking ownership of the working directory (/data); umask 0077.
# Busybox has no gosu and its setpriv cannot change uid, so `su` does the privilege drop: it
# execs the shell without forking, so redis-server still ends up as PID 1.
set -e

# The Valkey image (built from the vendored sources) has valkey-server and a valkey user,
# as the official valkey image does; SERVER and SERVER_USER are set by its image config.
server="${SERVER:-redis-server}"
user="${SERVER_USER:-redis}"

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- "$server" "$@"
fi

if [ "$1" = "$server" ] && [ "$(id -u)" = '0' ]; then
	find . \! -user "$user" -exec chown "$user" '{}' +
	exec su -s /bin/sh -c 'exec "$0" "$@"' -- "$user" "$0" "$@"
fi

um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
