#!/bin/sh
# Entrypoint of the stagectl redis stand-in; follows the official redis image's documented
# behaviour. The official redis build has protected mode off by default; Debian's is on, so
# unless the arguments or the config file say otherwise, `--protected-mode no` is added.
set -e

# `docker run redis --appendonly yes` and `docker run redis /path/redis.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ]; then
	protected=
	for arg; do
		case "$arg" in
			--protected-mode|--protected-mode=*) protected=1 ;;
		esac
	done
	if [ -z "$protected" ] && [ "$#" -ge 2 ] && [ "${2%.conf}" != "$2" ] && [ -r "$2" ] \
		&& grep -Eqi '^[[:space:]]*protected-mode[[:space:]]' "$2"; then
		protected=1
	fi
	if [ -z "$protected" ]; then
		set -- "$@" --protected-mode no
	fi
fi

# allow the container to be started with `--user`
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec gosu redis "$0" "$@"
fi

um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
