#!/usr/bin/env bash
# A real single-node SLURM cluster on 127.0.0.1 for the cluster tests: munge, MariaDB and slurmdbd (so that
# sacct answers as on a production cluster), slurmctld and slurmd, with every file in one state folder.
#
#   tests/cluster/slurm_cluster.sh start DIR   # installs Debian's packages if absent, starts the daemons,
#                                              # waits until the node is idle; clients need SLURM_CONF=DIR/slurm.conf
#   tests/cluster/slurm_cluster.sh stop DIR    # stops what start started
#
# Cluster "mednca-test", one node (this machine's cores, 90 % of its memory), partition "cpu", account
# "mednca" for the current user. Memory requests are enforced (a job over its --mem is killed). Ports are
# SLURM_TEST_PORT (controller), +1 (node daemon), +2 (slurmdbd), +3 (MariaDB); default 16817.
# Needs root, as the daemons do (a CI runner or a throw-away machine).
#
# The configuration is also linked from SLURM's default place, /etc/slurm/slurm.conf (only if nothing is
# there): Snakemake's job-step plugin removes every SLURM_* variable, SLURM_CONF included, before it calls
# srun inside a job, so srun finds the configuration only where production clusters keep it.
set -euo pipefail

PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
DAEMONS=(slurmctld slurmd slurmdbd munged mariadbd mariadb-install-db sacctmgr sbatch)
CLUSTER=mednca-test
DEFAULT_CONF=/etc/slurm/slurm.conf
ACCOUNT=mednca
PARTITION=cpu

die() { echo "slurm_cluster: $*" >&2; exit 1; }

install_packages() {
    local missing=0
    for tool in "${DAEMONS[@]}"; do command -v "$tool" >/dev/null || missing=1; done
    [[ $missing == 0 ]] && return
    [[ $(id -u) == 0 ]] || die "SLURM is not installed and installing it needs root: apt-get install ${PACKAGES[*]}"
    echo "installing ${PACKAGES[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq "$((seconds * 2))"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "$what did not come up within ${seconds}s (logs in $DIR/log)"
}

write_configs() {
    local port=${SLURM_TEST_PORT:-16817} host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat >"$DIR/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge.sock
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((port + 2))
AccountingStoragePass=$DIR/munge.sock
AccountingStoreFlags=job_comment
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=3600
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge.sock
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=$((port + 2))
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((port + 3))
StorageUser=slurm
StoragePass=slurm-test
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/slurmdbd.conf"
}

start_database() {
    local port=$((${SLURM_TEST_PORT:-16817} + 3))
    mariadb-install-db --no-defaults --datadir="$DIR/db" --user=root --auth-root-authentication-method=normal \
        --skip-test-db >"$DIR/log/db-install.log" 2>&1 || die "mariadb-install-db failed (see $DIR/log/db-install.log)"
    mariadbd --no-defaults --datadir="$DIR/db" --user=root --bind-address=127.0.0.1 --port="$port" \
        --socket="$DIR/mysql.sock" --pid-file="$DIR/mariadbd.pid" --log-error="$DIR/log/mariadbd.log" \
        --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
    wait_for 60 MariaDB mariadb --no-defaults -S "$DIR/mysql.sock" -u root -e "select 1"
    mariadb --no-defaults -S "$DIR/mysql.sock" -u root -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-test';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
}

link_default_conf() {
    # A dangling link is left by a test cluster whose folder is gone.
    [[ -L $DEFAULT_CONF && ! -e $DEFAULT_CONF ]] && rm -f "$DEFAULT_CONF"
    [[ -e $DEFAULT_CONF ]] && die "$DEFAULT_CONF exists (another SLURM installation, or a test cluster still running)"
    mkdir -p "$(dirname "$DEFAULT_CONF")"
    ln -s "$DIR/slurm.conf" "$DEFAULT_CONF"
}

start() {
    install_packages
    [[ -e $DIR/slurm.conf ]] && die "$DIR already holds a cluster: stop it first ($0 stop $DIR)"
    mkdir -p "$DIR"/{state,spool,log,db}
    DIR=$(cd "$DIR" && pwd)
    export SLURM_CONF=$DIR/slurm.conf
    write_configs
    link_default_conf
    head -c 1024 /dev/urandom >"$DIR/munge.key"
    chmod 600 "$DIR/munge.key"
    munged --key-file="$DIR/munge.key" --socket="$DIR/munge.sock" --pid-file="$DIR/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge.seed" --force
    start_database
    slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" >/dev/null
    sacctmgr -i add user "$(id -un)" Account="$ACCOUNT" >/dev/null
    slurmctld
    slurmd
    wait_for 60 "the node" bash -c '[[ $(sinfo -h -o %t) == idle ]]'
    echo "SLURM cluster $CLUSTER is up: export SLURM_CONF=$SLURM_CONF (account $ACCOUNT, partition $PARTITION)"
}

stop() {
    DIR=$(cd "$DIR" && pwd)
    export SLURM_CONF=$DIR/slurm.conf
    scancel --full --user "$(id -un)" >/dev/null 2>&1 || true
    for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
        local pidfile=$DIR/$daemon.pid
        [[ -s $pidfile ]] || continue
        local pid
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    done
    [[ $(readlink "$DEFAULT_CONF" 2>/dev/null) == "$DIR/slurm.conf" ]] && rm -f "$DEFAULT_CONF"
    rm -f "$DIR/slurm.conf"
}

[[ $# == 2 ]] || die "usage: $0 start|stop DIR"
DIR=$2
case $1 in
start) start ;;
stop) stop ;;
*) die "usage: $0 start|stop DIR" ;;
esac
