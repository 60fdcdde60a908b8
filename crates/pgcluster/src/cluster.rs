//! One throwaway PostgreSQL server: created, started, replicated, killed, promoted, stopped.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::binaries::psql;
use crate::process::{self, Identity, POLL};
use crate::{Error, PgBinaries};

/// The superuser initdb creates, and the user every URL names.
pub const SUPERUSER: &str = "kakehashi";

/// The longest unix socket path used: the kernel's `sun_path` holds 107 bytes and a NUL, and
/// the server appends `/.s.PGSQL.<port>` to its directory. Kept below that with room to spare.
const SOCKET_PATH_MAX: usize = 100;

/// The longest socket file name the server appends: `/.s.PGSQL.65535`.
const SOCKET_NAME_MAX: usize = "/.s.PGSQL.65535".len();

/// How many ports to try before giving up on starting: a clash needs another process to take
/// the port between our check and the server's bind, so a few tries are plenty.
const PORT_ATTEMPTS: u32 = 5;

/// What `pg_ctl start -w` and `promote -w` may wait (their `-t`): a cold start with crash
/// recovery replays WAL; on a loaded two-core machine that can take tens of seconds.
const PG_CTL_WAIT_SECS: u64 = 120;

/// What `pg_ctl stop -m immediate` may wait in `Drop`, which must not hang: an immediate stop
/// only signals and waits for exits; what is left after this is SIGKILLed.
const DROP_STOP_SECS: u64 = 10;

/// How long initdb and pg_basebackup may take (a new cluster is ~40 MB).
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a new standby may take to show `sync` in `pg_stat_replication`.
const SYNC_WAIT: Duration = Duration::from_secs(60);

/// How many lines of the server log a failed start shows.
const LOG_TAIL_LINES: usize = 30;

/// What a cluster is created with. `ClusterOptions::default()` is a unix socket only.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// Also listen on TCP at this address (on the cluster's port). The unix socket stays
    /// trusted; TCP connections need the password that [`Cluster::tcp_url`] carries
    /// (scram-sha-256), since anyone on the machine could reach the port.
    pub tcp: Option<IpAddr>,
    /// The unix socket's directory. By default `<dir>/socket`, or a new directory under the
    /// system's temporary directory when that path is too long for a unix socket. A directory
    /// given here is used as it is; it must be writable by the server's user.
    pub socket_dir: Option<PathBuf>,
    /// More `postgresql.conf` settings, written after the crate's own: a name and the value as
    /// the file spells it (quote strings: `("work_mem", "'8MB'")`).
    pub settings: Vec<(String, String)>,
}

/// A running (or stopped, or killed) PostgreSQL server of its own data directory, on a unix
/// socket. Dropping it stops the server (`-m immediate`) and SIGKILLs anything left.
///
/// Layout of the directory given to [`Cluster::start`]: `data/` (the data directory),
/// `server.log` (the server's log, outside the data directory so a base backup does not copy
/// it), and `socket/` (the socket directory, when its path is short enough).
#[derive(Debug)]
pub struct Cluster {
    binaries: PgBinaries,
    identity: Identity,
    dir: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    socket: Arc<SocketDir>,
    port: u16,
    /// `cluster_name`: a standby's application name on its primary.
    name: String,
    tcp: Option<IpAddr>,
    settings: Vec<(String, String)>,
    password: Option<String>,
    /// The postmaster's pid while running; it leads the process group of every server process.
    pid: Option<u32>,
    /// The application names this primary lists in `synchronous_standby_names`.
    standbys: Mutex<Vec<String>>,
}

impl Cluster {
    /// Creates a cluster in `dir` (new, or empty) and starts it.
    ///
    /// initdb makes the superuser `kakehashi`, trusted on the local socket only (whose
    /// directory only the server's user may enter, so only that user and root connect). The
    /// configuration is durable (`fsync`, `synchronous_commit`, `full_page_writes` on) and
    /// ready for streaming standbys (`wal_level = replica`, WAL senders and replication slots).
    /// `pg_ctl start -w` starts it on a free port, listening on the unix socket only
    /// (`listen_addresses` empty) unless `options.tcp` names an address too. As root,
    /// everything runs as the `postgres` user, who then owns `dir`.
    pub fn start(
        binaries: &PgBinaries,
        dir: &Path,
        options: ClusterOptions,
    ) -> Result<Self, Error> {
        validate_settings(&options.settings)?;
        let identity = Identity::detect()?;
        let dir = prepare_dir(&identity, dir)?;
        let socket = SocketDir::choose(&identity, &dir, options.socket_dir.as_deref())?;
        let password = options.tcp.map(|_| random_password()).transpose()?;
        let mut cluster = Self {
            binaries: binaries.clone(),
            identity,
            data_dir: dir.join("data"),
            log: dir.join("server.log"),
            dir,
            socket,
            port: 0,
            name: "primary".to_owned(),
            tcp: options.tcp,
            settings: options.settings,
            password,
            pid: None,
            standbys: Mutex::new(Vec::new()),
        };
        cluster.initdb()?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Creates database `name` (a plain lowercase identifier) and returns its [`Cluster::url`].
    pub fn create_database(&self, name: &str) -> Result<String, Error> {
        validate_identifier(name)?;
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\";"))?;
        Ok(self.url(name))
    }

    /// `postgresql://kakehashi@/<database>?host=<socket dir>&port=<port>`: the unix socket, as
    /// libpq and tokio-postgres read a `host` that is a path.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@/{}?host={}&port={}",
            encode(database),
            encode(&self.socket.path.to_string_lossy()),
            self.port
        )
    }

    /// `postgresql://kakehashi:<password>@<address>:<port>/<database>` when the cluster also
    /// listens on TCP ([`ClusterOptions::tcp`]).
    pub fn tcp_url(&self, database: &str) -> Option<String> {
        let address = self.tcp?;
        let password = self.password.as_deref()?;
        let host = match address {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        Some(format!(
            "postgresql://{SUPERUSER}:{password}@{host}:{}/{}",
            self.port,
            encode(database)
        ))
    }

    /// The port: the TCP port when listening on TCP, and the socket's name (`.s.PGSQL.<port>`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The unix socket's directory (a standby shares its primary's).
    pub fn socket_dir(&self) -> &Path {
        &self.socket.path
    }

    /// The data directory (`<dir>/data`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log (`<dir>/server.log`), appended to by every start.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `cluster_name`, which a standby's primary sees as its application name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The postmaster's process id while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether the server was started and not since stopped or killed.
    pub fn is_running(&self) -> bool {
        self.pid.is_some()
    }

    /// A streaming standby of this primary in `dir` (new, or empty): `pg_basebackup -R` with a
    /// replication slot, its own port, the same socket directory, started. The primary then
    /// lists it in `synchronous_standby_names` (every listed standby must confirm each commit)
    /// and reloads; this returns once `pg_stat_replication` shows it `sync`.
    ///
    /// From then on every commit on the primary waits for this standby: drop the primary
    /// before its standby (or kill it), or writes on it wait for a standby that is gone.
    pub fn start_sync_standby(&self, dir: &Path) -> Result<Self, Error> {
        self.ensure_running()?;
        let dir = prepare_dir(&self.identity, dir)?;
        let mut standbys = self.standbys.lock().unwrap_or_else(PoisonError::into_inner);
        let name = format!("standby{}", standbys.len() + 1);
        let mut standby = Self {
            binaries: self.binaries.clone(),
            identity: self.identity.clone(),
            data_dir: dir.join("data"),
            log: dir.join("server.log"),
            dir,
            socket: Arc::clone(&self.socket),
            port: 0,
            name: name.clone(),
            tcp: self.tcp,
            settings: self.settings.clone(),
            password: self.password.clone(),
            pid: None,
            standbys: Mutex::new(Vec::new()),
        };
        standby.base_backup(self)?;
        standby.start_server()?;
        standbys.push(name.clone());
        let list = standbys
            .iter()
            .map(|name| format!("\"{name}\""))
            .collect::<Vec<_>>()
            .join(", ");
        self.psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET synchronous_standby_names = 'FIRST {} ({list})';\n\
                 SELECT pg_reload_conf();",
                standbys.len()
            ),
        )?;
        drop(standbys);
        self.wait_synchronous(&name)?;
        Ok(standby)
    }

    /// SIGKILLs the postmaster and every server process (their process group), as a power
    /// cut would: nothing is flushed or shut down. Returns once none of them is alive.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            self.power_off(pid);
        }
    }

    /// Starts the server again after [`Cluster::stop`] or [`Cluster::kill`] (crash recovery
    /// after a kill), on the same port when it is still free.
    pub fn restart(&mut self) -> Result<(), Error> {
        if self.pid.is_some() {
            return Ok(());
        }
        self.start_server()
    }

    /// `pg_ctl promote -w`: a standby becomes a primary that accepts writes.
    pub fn promote(&self) -> Result<(), Error> {
        self.ensure_running()?;
        self.pg_ctl(&["promote", "-w", "-t", &PG_CTL_WAIT_SECS.to_string()])
            .map(drop)
    }

    /// `pg_ctl stop -m fast`: the server ends its sessions, checkpoints and exits.
    pub fn stop(&mut self) -> Result<(), Error> {
        if self.pid.is_none() {
            return Ok(());
        }
        self.pg_ctl(&[
            "stop",
            "-m",
            "fast",
            "-w",
            "-t",
            &PG_CTL_WAIT_SECS.to_string(),
        ])?;
        self.pid = None;
        Ok(())
    }

    /// Runs `sql` in `database` through the installation's psql (for tests and setup), and
    /// returns its output: unaligned, tuples only (`-At`), one row a line. psql stops at the
    /// first error, which is returned with psql's message.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, Error> {
        self.ensure_running()?;
        psql(&self.binaries, &self.url(database), sql)
    }

    fn ensure_running(&self) -> Result<(), Error> {
        if self.pid.is_none() {
            return Err(Error::NotRunning {
                data_dir: self.data_dir.clone(),
            });
        }
        Ok(())
    }

    /// initdb, then the crate's configuration: pg_hba.conf and `include 'kakehashi.conf'`.
    fn initdb(&self) -> Result<(), Error> {
        let mut args: Vec<OsString> = vec![
            "-D".into(),
            self.data_dir.clone().into(),
            "-U".into(),
            SUPERUSER.into(),
            // pg_hba.conf is rewritten below; trust here only silences initdb's warning.
            "--auth=trust".into(),
            "--encoding=UTF8".into(),
            "--locale=C".into(),
            // initdb's own files are not fsynced: a throwaway cluster does not outlive a
            // machine crash, and the server itself runs with fsync on. Saves seconds a start.
            "--no-sync".into(),
        ];
        let password_file = self.dir.join("password");
        if let Some(password) = &self.password {
            self.write_owned(&password_file, password)?;
            let mut flag = OsString::from("--pwfile=");
            flag.push(&password_file);
            args.push(flag);
        }
        let result = self.tool("initdb", &args, SETUP_TIMEOUT);
        let _ = fs::remove_file(&password_file);
        result?;
        self.write_owned(&self.data_dir.join("pg_hba.conf"), &self.hba())?;
        let conf = self.data_dir.join("postgresql.conf");
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| {
                file.write_all(b"\n# kakehashi-pgcluster's settings, rewritten at each start.\ninclude 'kakehashi.conf'\n")
            })
            .map_err(|e| Error::io(format!("append to {}", conf.display()), e))
    }

    /// Who may connect how: the superuser over the local socket (trusted: the socket's
    /// directory keeps everyone else out), and over TCP with the password when asked.
    fn hba(&self) -> String {
        let mut hba = String::from(
            "# kakehashi-pgcluster: the superuser on the local socket, whose directory only the\n\
             # server's user (and root) may enter.\n",
        );
        let _ = writeln!(hba, "local all {SUPERUSER} trust");
        let _ = writeln!(hba, "local replication {SUPERUSER} trust");
        if let Some(address) = self.tcp {
            let bits = if address.is_ipv4() { 32 } else { 128 };
            let _ = writeln!(hba, "host all {SUPERUSER} {address}/{bits} scram-sha-256");
        }
        hba
    }

    /// `kakehashi.conf`: this server's port, socket, name, durability and replication.
    fn config(&self) -> String {
        let listen = self.tcp.map(|a| a.to_string()).unwrap_or_default();
        let mut conf = format!(
            "# Written by kakehashi-pgcluster at each start: a throwaway cluster for tests.\n\
             port = {port}\n\
             listen_addresses = {listen}\n\
             unix_socket_directories = {socket}\n\
             unix_socket_permissions = 0700\n\
             cluster_name = {name}\n\
             # Nothing acknowledged before it is durable, as in production.\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n\
             # Streaming standbys with replication slots.\n\
             wal_level = replica\n\
             max_wal_senders = 10\n\
             max_replication_slots = 10\n\
             hot_standby = on\n\
             # Small: several clusters share a test machine.\n\
             shared_buffers = '32MB'\n\
             max_connections = 100\n\
             log_line_prefix = '%m [%p] '\n",
            port = self.port,
            listen = quote(&listen),
            socket = quote(&self.socket.path.to_string_lossy()),
            name = quote(&self.name),
        );
        for (name, value) in &self.settings {
            let _ = writeln!(conf, "{name} = {value}");
        }
        conf
    }

    /// Picks a free port, writes the configuration and `pg_ctl start -w`; on a port clash,
    /// tries another. A failure shows the end of the server log.
    fn start_server(&mut self) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The same port again when restarting, so URLs stay valid; a clash picks another.
            // (A killed server's socket and lock file are still there: the server replaces
            // them once it sees their pid is gone.)
            if self.port == 0 {
                self.port = free_port(&self.socket.path, self.tcp)?;
            }
            self.write_owned(&self.data_dir.join("kakehashi.conf"), &self.config())?;
            let log_start = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
            let started = self.pg_ctl(&[
                "start",
                "-w",
                "-t",
                &PG_CTL_WAIT_SECS.to_string(),
                "-l",
                &self.log.to_string_lossy(),
            ]);
            let reason = match started {
                Ok(_) => match read_pid(&self.data_dir) {
                    Ok(pid) => {
                        self.pid = Some(pid);
                        return Ok(());
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            // pg_ctl may give up waiting while the server still starts: leave nothing behind.
            if let Ok(pid) = read_pid(&self.data_dir) {
                self.power_off(pid);
            }
            let log_tail = log_tail(&self.log, log_start);
            if attempt < PORT_ATTEMPTS && is_port_clash(&log_tail) {
                self.port = 0;
                continue;
            }
            return Err(Error::Start {
                data_dir: self.data_dir.clone(),
                reason,
                log: self.log.clone(),
                log_tail,
            });
        }
    }

    /// `pg_basebackup -R` from `primary` into this standby's data directory, through a new
    /// replication slot named after the standby.
    fn base_backup(&self, primary: &Self) -> Result<(), Error> {
        let args: Vec<OsString> = vec![
            "-D".into(),
            self.data_dir.clone().into(),
            "-h".into(),
            primary.socket.path.clone().into(),
            "-p".into(),
            primary.port.to_string().into(),
            "-U".into(),
            SUPERUSER.into(),
            "-X".into(),
            "stream".into(),
            "-R".into(),
            "-C".into(),
            "-S".into(),
            self.name.clone().into(),
            "-c".into(),
            "fast".into(),
            // As initdb's --no-sync: the copy does not need to outlive a machine crash.
            "--no-sync".into(),
        ];
        self.tool("pg_basebackup", &args, SETUP_TIMEOUT)?;
        // A primary with standbys already lists them: the copy must not, or once promoted it
        // would wait for standbys of its own that do not exist.
        let auto = self.data_dir.join("postgresql.auto.conf");
        let text = fs::read_to_string(&auto)
            .map_err(|e| Error::io(format!("read {}", auto.display()), e))?;
        let kept: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("synchronous_standby_names"))
            .map(|line| format!("{line}\n"))
            .collect();
        self.write_owned(&auto, &kept)
    }

    /// SIGKILLs postmaster `pid` and its server processes, then clears what a power cut
    /// clears too: the server's System V shared memory segment (nothing else removes it, and
    /// every killed cluster would leak one), its `postmaster.pid` and its socket's lock file
    /// (the killed postmaster can stay a zombie for seconds until init reaps it, and a server
    /// refuses to start while the pid in either file exists).
    fn power_off(&self, pid: u32) {
        process::kill_server(pid, &self.data_dir);
        if process::is_alive(pid) {
            // Not killed (not this data directory's server): touch nothing of it.
            return;
        }
        let pid_file = self.data_dir.join("postmaster.pid");
        let Ok(text) = fs::read_to_string(&pid_file) else {
            return;
        };
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(pid.to_string().as_str()) {
            return;
        }
        // postmaster.pid's seventh line: the segment's key and id.
        let shmid = lines
            .nth(5)
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|id| id.parse::<u64>().ok());
        if let Some(shmid) = shmid {
            let mut command = Command::new("ipcrm");
            command.args(["-m", &shmid.to_string()]);
            let _ = process::run(&mut command, None, Duration::from_secs(30));
        }
        let _ = fs::remove_file(&pid_file);
        let socket = self.socket.path.join(format!(".s.PGSQL.{}", self.port));
        let lock = self
            .socket
            .path
            .join(format!(".s.PGSQL.{}.lock", self.port));
        let locked_by_it = fs::read_to_string(&lock)
            .is_ok_and(|text| text.lines().next().map(str::trim) == Some(&pid.to_string()));
        if locked_by_it {
            let _ = fs::remove_file(&socket);
            let _ = fs::remove_file(&lock);
        }
    }

    /// Waits until the primary's `pg_stat_replication` shows standby `name` as `sync`.
    fn wait_synchronous(&self, name: &str) -> Result<(), Error> {
        let deadline = Instant::now() + SYNC_WAIT;
        let query = format!(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}';"
        );
        loop {
            let state = self.psql("postgres", &query)?.trim().to_owned();
            if state == "sync" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::NotSynchronous {
                    name: name.to_owned(),
                    state,
                    seconds: SYNC_WAIT.as_secs(),
                });
            }
            thread::sleep(POLL);
        }
    }

    /// `pg_ctl <args> -D <data dir>` as the server's user.
    fn pg_ctl(&self, args: &[&str]) -> Result<process::Output, Error> {
        let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
        all.push("-D".into());
        all.push(self.data_dir.clone().into());
        // pg_ctl's own -t bounds it; the margin covers the process itself.
        let timeout = Duration::from_secs(PG_CTL_WAIT_SECS + 30);
        self.tool("pg_ctl", &all, timeout)
    }

    /// One of the installation's programs, as the server's user, from the cluster's directory
    /// (a tool run as `postgres` from a directory it cannot read fails oddly).
    fn tool(
        &self,
        program: &str,
        args: &[OsString],
        timeout: Duration,
    ) -> Result<process::Output, Error> {
        let mut command = self.identity.command(&self.binaries.program(program), args);
        command.current_dir(&self.dir);
        process::run(&mut command, None, timeout)
    }

    /// Writes `text` to `path` as a file of the server's user, readable by it only.
    fn write_owned(&self, path: &Path, text: &str) -> Result<(), Error> {
        fs::write(path, text).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        self.identity.own(path, 0o600)
    }
}

impl Drop for Cluster {
    /// Stops a running server with `pg_ctl stop -m immediate` (bounded), then SIGKILLs
    /// whatever of it is left: never a postmaster behind, never a hang, never a panic.
    fn drop(&mut self) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        let args: Vec<OsString> = [
            "stop",
            "-m",
            "immediate",
            "-w",
            "-t",
            &DROP_STOP_SECS.to_string(),
            "-D",
        ]
        .into_iter()
        .map(OsString::from)
        .chain([self.data_dir.clone().into_os_string()])
        .collect();
        let stopped = self.tool("pg_ctl", &args, Duration::from_secs(DROP_STOP_SECS + 10));
        if stopped.is_err() {
            self.power_off(pid);
        }
    }
}

/// One URL naming several clusters: `host=<socket dirs>&port=<ports>` with
/// `target_session_attrs=read-write`, so a client connects to whichever is the primary, and
/// after a promotion reconnects to the new one.
pub fn multi_host_url(clusters: &[&Cluster], database: &str) -> String {
    let hosts: Vec<String> = clusters
        .iter()
        .map(|cluster| encode(&cluster.socket.path.to_string_lossy()))
        .collect();
    let ports: Vec<String> = clusters.iter().map(|c| c.port.to_string()).collect();
    format!(
        "postgresql://{SUPERUSER}@/{}?host={}&port={}&target_session_attrs=read-write",
        encode(database),
        hosts.join(","),
        ports.join(",")
    )
}

/// The unix socket's directory, shared by a primary and its standbys; removed with the last
/// of them when this crate made it outside the cluster's directory.
#[derive(Debug)]
struct SocketDir {
    path: PathBuf,
    remove: bool,
}

impl SocketDir {
    /// `requested`, else `<dir>/socket`, else (too long a path) a new directory under the
    /// system's temporary directory or `/tmp`.
    fn choose(
        identity: &Identity,
        dir: &Path,
        requested: Option<&Path>,
    ) -> Result<Arc<Self>, Error> {
        if let Some(path) = requested {
            let path = absolute(path)?;
            if !socket_path_fits(&path) {
                return Err(Error::InvalidSetting {
                    name: "socket_dir".to_owned(),
                    reason: "too long for a unix socket path (about 100 bytes with the socket's name)",
                });
            }
            if !path.exists() {
                make_dir(&path)?;
                identity.own(&path, 0o700)?;
            }
            return Ok(Arc::new(Self {
                path,
                remove: false,
            }));
        }
        let inside = dir.join("socket");
        if socket_path_fits(&inside) {
            make_dir(&inside)?;
            identity.own(&inside, 0o700)?;
            return Ok(Arc::new(Self {
                path: inside,
                remove: false,
            }));
        }
        let path = short_temp_dir()?;
        identity.own(&path, 0o700)?;
        Ok(Arc::new(Self { path, remove: true }))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Creates `dir` (or takes it when empty), makes it the server user's with mode 0700, and
/// checks that the server's user can reach it.
fn prepare_dir(identity: &Identity, dir: &Path) -> Result<PathBuf, Error> {
    let dir = absolute(dir)?;
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let mut entries =
        fs::read_dir(&dir).map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
    if entries.next().is_some() {
        return Err(Error::DirectoryNotEmpty { dir });
    }
    identity.own(&dir, 0o700)?;
    if !identity.can_write(&dir) {
        return Err(Error::Unreachable { dir });
    }
    Ok(dir)
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|e| Error::io(format!("resolve {}", path.display()), e))
}

fn make_dir(path: &Path) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(|e| Error::io(format!("create {}", path.display()), e))
}

fn socket_path_fits(dir: &Path) -> bool {
    dir.as_os_str().len() + SOCKET_NAME_MAX <= SOCKET_PATH_MAX
}

/// A new directory with a short path for a socket: `<tmp>/kkpg-<pid>-<n>`.
fn short_temp_dir() -> Result<PathBuf, Error> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let system = std::env::temp_dir();
    let base = if socket_path_fits(&system.join("kkpg-4294967295-4294967295")) {
        system
    } else {
        PathBuf::from("/tmp")
    };
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("kkpg-{}-{n}", std::process::id()));
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            // Left by an earlier process with our pid: take the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("create {}", path.display()), e)),
        }
    }
}

/// A port the kernel says is free on TCP now, whose socket name is unused in `socket_dir`.
fn free_port(socket_dir: &Path, tcp: Option<IpAddr>) -> Result<u16, Error> {
    let address = tcp.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    // Bounded: each try is a fresh kernel-chosen port, so more than a few taken sockets in
    // one directory means something else is wrong.
    for _ in 0..100 {
        let port = TcpListener::bind((address, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|e| Error::io(format!("find a free port on {address}"), e))?
            .port();
        if port_is_free(socket_dir, tcp, port) {
            return Ok(port);
        }
    }
    Err(Error::io(
        format!("find a free port in {}", socket_dir.display()),
        io::Error::from(io::ErrorKind::AddrInUse),
    ))
}

fn port_is_free(socket_dir: &Path, tcp: Option<IpAddr>, port: u16) -> bool {
    let name = format!(".s.PGSQL.{port}");
    let socket_free =
        !socket_dir.join(&name).exists() && !socket_dir.join(format!("{name}.lock")).exists();
    socket_free && tcp.is_none_or(|address| TcpListener::bind((address, port)).is_ok())
}

/// Whether a failed start's log says the port or its socket was taken.
fn is_port_clash(log: &str) -> bool {
    log.contains("Address already in use")
        || log.contains("could not bind")
        || (log.contains("lock file") && log.contains(".s.PGSQL."))
}

/// The postmaster's pid: the first line of `postmaster.pid`.
fn read_pid(data_dir: &Path) -> Result<u32, Error> {
    let path = data_dir.join("postmaster.pid");
    let text =
        fs::read_to_string(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| {
            Error::io(
                format!("read the pid in {}", path.display()),
                io::Error::from(io::ErrorKind::InvalidData),
            )
        })
}

/// The last lines the server logged after byte `from`.
fn log_tail(log: &Path, from: u64) -> String {
    let mut text = String::new();
    let read = fs::File::open(log).and_then(|mut file| {
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(())
    });
    if let Err(e) = read {
        return format!("(could not read {}: {e})", log.display());
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// 128 random bits from the kernel, in hex: the TCP password.
fn random_password() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|e| Error::io("read /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A plain identifier: no quoting needed in SQL or URLs, and no injection through a name.
fn validate_identifier(name: &str) -> Result<(), Error> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn validate_settings(settings: &[(String, String)]) -> Result<(), Error> {
    for (name, value) in settings {
        let invalid = |reason| Error::InvalidSetting {
            name: name.clone(),
            reason,
        };
        let plain_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !plain_name {
            return Err(invalid("not a setting name"));
        }
        if value.is_empty() || value.contains(['\n', '\r']) {
            return Err(invalid("the value must be one non-empty line"));
        }
    }
    Ok(())
}

/// `text` as a postgresql.conf string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Percent-encodes everything in a URL component but unreserved characters and `/` (socket
/// paths stay readable; libpq and tokio-postgres decode them).
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_paths_readable_and_escapes_the_rest() {
        assert_eq!(encode("/tmp/kkpg-1-0"), "/tmp/kkpg-1-0");
        assert_eq!(encode("a b&c=d,e%"), "a%20b%26c%3Dd%2Ce%25");
    }

    #[test]
    fn identifiers_are_plain_or_refused() {
        for good in ["ledger", "node_jp", "db2", "_x"] {
            assert!(validate_identifier(good).is_ok(), "{good}");
        }
        for bad in ["", "2db", "Ledger", "a-b", "a\"; DROP", &"x".repeat(64)] {
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_one_line_under_a_plain_name() {
        let ok = vec![("work_mem".to_owned(), "'8MB'".to_owned())];
        assert!(validate_settings(&ok).is_ok());
        let newline = vec![("work_mem".to_owned(), "'8MB'\nfsync = off".to_owned())];
        assert!(validate_settings(&newline).is_err());
        let name = vec![("fsync = off #".to_owned(), "on".to_owned())];
        assert!(validate_settings(&name).is_err());
    }

    #[test]
    fn conf_strings_double_their_quotes() {
        assert_eq!(quote("/a/it's"), "'/a/it''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn a_long_socket_directory_does_not_fit() {
        assert!(socket_path_fits(Path::new("/tmp/kkpg-1-0")));
        assert!(!socket_path_fits(&Path::new("/").join("d".repeat(90))));
    }

    #[test]
    fn a_port_clash_is_recognized_in_the_log() {
        assert!(is_port_clash(
            "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"
        ));
        assert!(is_port_clash(
            "FATAL:  lock file \"/s/.s.PGSQL.5432.lock\" already exists"
        ));
        assert!(!is_port_clash(
            "FATAL:  lock file \"postmaster.pid\" already exists"
        ));
        assert!(!is_port_clash("FATAL:  data directory has wrong ownership"));
    }
}
