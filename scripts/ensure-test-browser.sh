#!/usr/bin/env bash
# The QA report is tested in a real browser: make sure Debian's headless Chromium is there.
# Installs it with apt when missing and possible (root on Debian/Ubuntu); otherwise says how.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (Debian package) for the QA report's browser test..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "chromium is not installed and cannot be installed here: install Debian's 'chromium' package," >&2
echo "or set PSEUDO3D_SKIP_BROWSER_TESTS=1 to skip the browser test." >&2
exit 0
