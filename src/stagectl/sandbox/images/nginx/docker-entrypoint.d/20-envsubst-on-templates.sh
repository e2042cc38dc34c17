#!/bin/sh
# Renders /etc/nginx/templates/**/*.template into /etc/nginx/conf.d with envsubst, replacing only
# variables that are set in the environment (so nginx's own $host, $uri ... survive), as the
# official image does. Settings: NGINX_ENVSUBST_TEMPLATE_DIR, NGINX_ENVSUBST_TEMPLATE_SUFFIX,
# NGINX_ENVSUBST_OUTPUT_DIR, NGINX_ENVSUBST_FILTER.
set -e

ME=$(basename "$0")

entrypoint_log() {
	if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
		echo "$@"
	fi
}

auto_envsubst() {
	template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
	suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
	output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
	filter="${NGINX_ENVSUBST_FILTER:-}"

	[ -d "$template_dir" ] || return 0
	if [ ! -w "$output_dir" ]; then
		entrypoint_log "$ME: ERROR: $template_dir exists, but $output_dir is not writable"
		return 0
	fi
	defined_envs=$(awk -v filter="$filter" 'END { for (name in ENVIRON) if (name ~ filter) printf "${%s} ", name }' </dev/null)
	find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
		relative_path="${template#"$template_dir/"}"
		output_path="$output_dir/${relative_path%"$suffix"}"
		mkdir -p "$(dirname "$output_path")"
		entrypoint_log "$ME: Running envsubst on $template to $output_path"
		envsubst "$defined_envs" <"$template" >"$output_path"
	done
}

auto_envsubst
exit 0
