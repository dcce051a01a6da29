#!/bin/sh
# The Asterisk container's start under docker-compose.yml, before the image's own entrypoint:
#
# 1. asterisk_conf/ (mounted read-only at /etc/call-monitor-asterisk) is copied over the
#    image's stock configuration in /etc/asterisk, so the files we do not ship (asterisk.conf,
#    modules.conf, logger.conf ...) keep their stock content;
# 2. compose-only lines are appended to the copy of manager.conf, never to asterisk_conf/:
#    the AMI secret from .env for the monitor's user, and a permit for the monitor's fixed
#    address on the compose network. Asterisk's "[section](+)" adds lines to a section the
#    file already has; for a repeated key (secret, bindaddr) the last line wins.
set -eu

# The paths are the container's; the variables exist for tests/test_deploy.py.
src=${ASTERISK_CONF_SOURCE:-/etc/call-monitor-asterisk}
dst=${ASTERISK_CONF_DIR:-/etc/asterisk}
: "${AMI_USERNAME:?}" "${AMI_SECRET:?}" "${MONITOR_ADDRESS:?}"

if [ -d "$src" ]; then
    cp -R "$src"/. "$dst"/
fi

if grep -q "^\[$AMI_USERNAME\]" "$dst/manager.conf" 2>/dev/null; then
    cat >>"$dst/manager.conf" <<CONF

; --- added by deploy/asterisk/compose-entrypoint.sh (docker compose only) ---
[general](+)
bindaddr = 0.0.0.0

[$AMI_USERNAME](+)
secret = $AMI_SECRET
permit = $MONITOR_ADDRESS/255.255.255.255
CONF
else
    echo "compose-entrypoint: no [$AMI_USERNAME] user in manager.conf (asterisk_conf/):" \
        "the monitor cannot log in" >&2
fi

# The image's entrypoint (owner of the mounted volumes), then Asterisk itself.
exec "${IMAGE_ENTRYPOINT:-/usr/local/bin/entrypoint.sh}" "$@"
