#!/bin/sh
# stagectl base image: package installs inside image builds never start services.
# (The sandbox server image removes this file: there, services start as on a real server.)
exit 101
