# shellcheck shell=bash
# Shared set-up for scripts/demo and scripts/test (sourced, not run).
# Installs what a fresh Debian 12 machine lacks, once: apt packages, then .venv with
# `pip install -e '.[test]'`.  Set PYVRRP_NO_INSTALL=1 to only check.
# Each install step prints one progress line; apt's and pip's output goes to $SETUP_LOG
# (PYVRRP_SETUP_LOG overrides), and its tail is shown when a step fails.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO/.venv"
export DEBIAN_FRONTEND=noninteractive
SETUP_LOG=${PYVRRP_SETUP_LOG:-${TMPDIR:-/tmp}/pyvrrp-setup.log}

# command -> Debian package
APT_NEEDS=(
    "ip:iproute2"            # namespaces, veths, bridge
    "nft:nftables"           # split-brain tests block VRRP on the lab switch
    "keepalived:keepalived"  # interop / reference peer
    "tcpdump:tcpdump"        # br0 captures
    "etcd:etcd-server"       # the quorum witness's tests (issue 13); its service is not started
    "etcdctl:etcd-client"    # test_witness_ops.py enables etcd auth with it (etcd-server only suggests it)
    "vtysh:frr"              # FRR vrrpd interop (use_vmac tests); its service is not started
    "arping:iputils-arping"  # ARP checks from the client
    "ping:iputils-ping"      # keepalived best-practice gateway check (split-brain matrix control)
    "modprobe:kmod"          # tools/uml-run (IPVS in User-Mode Linux)
    "ipvsadm:ipvsadm"        # IPVS cross-checks
    "bird:bird2"             # netns-tests/test_bgp_lab.py: the upstream router, BIRD speaker
    "exabgp:exabgp"          # netns-tests/test_bgp_lab.py: the ExaBGP speaker
    "dpkg-deb:dpkg"          # tools/uml-run unpacks the UML kernel package
    "ps:procps"
    "killall:psmisc"
    "python3:python3"
)

# The interpreter for .venv: the distribution's /usr/bin/python3 when it is 3.11 or newer
# (Debian builds it with PGO and LTO: it starts ~3 ms faster than a plain source build such
# as pyenv's, and `pyvrrp run` start-up is measured against keepalived, #3), else the first
# python3 on PATH.  PYVRRP_PYTHON overrides.
pick_python() {
    if [ -n "${PYVRRP_PYTHON:-}" ]; then
        echo "$PYVRRP_PYTHON"
    elif [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo /usr/bin/python3
    else
        command -v python3
    fi
}

# step DESCRIPTION COMMAND...: one progress line on stderr, the command's output in $SETUP_LOG.
step() {
    local what=$1 rc=0
    shift
    printf 'setup: %s ... ' "$what" >&2
    echo "=== $(date -u +%FT%TZ) $what: $*" >>"$SETUP_LOG"
    "$@" >>"$SETUP_LOG" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "ok" >&2
        return 0
    fi
    echo "FAILED (exit $rc); last lines of $SETUP_LOG:" >&2
    tail -n 25 "$SETUP_LOG" >&2
    return "$rc"
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$(basename "$0"): needs root (network namespaces, raw sockets): run it as root" >&2
        exit 2
    fi
}

ensure_apt() {
    local missing=() item cmd pkg
    for item in "${APT_NEEDS[@]}"; do
        cmd=${item%%:*}
        pkg=${item#*:}
        command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 \
            || missing+=("$pkg")
    done
    "$(pick_python)" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=("python3-venv")
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    if [ "${PYVRRP_NO_INSTALL:-0}" = 1 ]; then
        echo "missing packages: ${missing[*]}" >&2
        return 1
    fi
    echo "setup: installing ${missing[*]} (log: $SETUP_LOG)" >&2
    step "apt-get update" apt-get update -q
    # etcd-server's, frr's and bird2's maintainer scripts would start them in the root namespace: the
    # tests start their own inside lab namespaces, so forbid service starts
    # (invoke-rc.d exit 101) during this install, unless a policy is there already.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    local rc=0
    step "apt-get install" apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now etcd.service frr.service bird.service exabgp.service >>"$SETUP_LOG" 2>&1 || true
    fi
    return "$rc"
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pyvrrp, pytest, pytest_timeout, scapy, build, httpx' >/dev/null 2>&1; then
        return 0
    fi
    if [ "${PYVRRP_NO_INSTALL:-0}" = 1 ]; then
        echo "no usable $VENV" >&2
        return 1
    fi
    echo "setup: creating $VENV (log: $SETUP_LOG)" >&2
    step "python -m venv" "$(pick_python)" -m venv "$VENV"
    step "pip install --upgrade pip" "$VENV/bin/python" -m pip install --upgrade pip
    # compat mode: a plain .pth path entry instead of setuptools' import-hook finder,
    # which costs ~15 ms at every interpreter start (the daemon's start-up counts, #3).
    step "pip install -e .[test]" \
        "$VENV/bin/python" -m pip install -e "$REPO[test]" --config-settings editable_mode=compat
}

# Byte-compile the package. pip does it for a wheel install; an editable install leaves it
# to the interpreter, which skips it when PYTHONDONTWRITEBYTECODE is set (as in CI) and then
# compiles every pyvrrp module from source at each start (~150 ms of `pyvrrp run` start-up).
ensure_bytecode() {
    "$VENV/bin/python" -m compileall -q "$REPO/pyvrrp" >/dev/null
}

ensure_all() {
    ensure_apt
    ensure_venv
    ensure_bytecode
}
