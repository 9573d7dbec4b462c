//! Data-parallel training on libtorch's distributed engine (c10d), the one `torch.distributed`
//! runs on: processes meet through a TCP store (rank 0 serves it at `MASTER_ADDR:MASTER_PORT`)
//! and exchange tensors through a process group over it, gloo for CPU tensors, NCCL for CUDA
//! tensors. The C++ side is `csrc/distributed.cpp`.
//!
//! A process joins when the launcher environment PyTorch users know is set (`RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`, as `torchrun` sets them, or as
//! `storyvis train --nproc N` sets them for its N processes); `Launch::from_env` reads it.
//! What the training engine does with the group (shards, averaged gradients, broadcast
//! weights) is in `train.rs`.

use anyhow::{bail, ensure, Context, Result};
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tch::{Device, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn storyvis_dist_init(
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        serve: c_int,
        prefix: *const c_char,
        backend: c_int,
        timeout_ms: i64,
        out: *mut *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_dist_free(group: *mut c_void);
    fn storyvis_dist_store_host(
        port: c_int,
        timeout_ms: i64,
        out: *mut *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_dist_store_free(store: *mut c_void);
    fn storyvis_dist_allreduce(
        group: *mut c_void,
        t: *const C_tensor,
        op: c_int,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_dist_broadcast(
        group: *mut c_void,
        t: *const C_tensor,
        root: c_int,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_dist_barrier(group: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    fn storyvis_dist_set(
        group: *mut c_void,
        key: *const c_char,
        value: *const u8,
        value_len: usize,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_dist_get(
        group: *mut c_void,
        key: *const c_char,
        value: *mut u8,
        cap: usize,
        value_len: *mut usize,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
}

/// Calls one of the C functions with an error buffer; the C++ exception's message, if any.
fn call(f: impl FnOnce(*mut c_char, usize) -> c_int) -> std::result::Result<(), String> {
    let mut err = [0 as c_char; 1024];
    if f(err.as_mut_ptr(), err.len()) != 0 {
        // SAFETY: the C side wrote a NUL-terminated message into the buffer.
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
        // libtorch appends a C++ backtrace after the first line (or after "Exception raised
        // from"): the first line is what happened.
        let first = msg.split("Exception raised from").next().unwrap_or(&msg);
        return Err(first.lines().next().unwrap_or("").trim().to_string());
    }
    Ok(())
}

/// The collective library a group runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors (and CUDA tensors through host copies).
    Gloo,
    /// NCCL: CUDA tensors, GPU to GPU (a CUDA build of libtorch).
    Nccl,
}

impl FromStr for Backend {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Backend> {
        match s.trim() {
            "gloo" => Ok(Backend::Gloo),
            "nccl" => Ok(Backend::Nccl),
            other => bail!("unknown distributed backend {other:?}: use gloo or nccl"),
        }
    }
}

impl Backend {
    /// PyTorch's default for a device: NCCL for CUDA, gloo for the CPU.
    pub fn for_device(device: Device) -> Backend {
        if device.is_cuda() {
            Backend::Nccl
        } else {
            Backend::Gloo
        }
    }
}

/// The default time a collective or the rendezvous waits for the other ranks before the run
/// ends with an error (a rank that died closes its connections, which ends the others' waits
/// at once; this bounds the wait for one that hangs).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Where this process stands among the run's processes (torchrun's variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world: usize,
    /// The rank among this machine's processes: the CUDA device it uses (`cuda:LOCAL_RANK`).
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// The launcher's agent hosts the store at MASTER_ADDR:MASTER_PORT already (torchrun sets
    /// `TORCHELASTIC_USE_AGENT_STORE=True`): every rank joins it as a client.
    pub agent_store: bool,
    /// How many times the launcher has restarted the ranks (`TORCHELASTIC_RESTART_COUNT`):
    /// the keys of each start go apart in the agent's store, which outlives them.
    pub restarts: u32,
}

/// The variables `Launch::from_env` reads.
pub const ENV: [&str; 5] = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"];

impl Launch {
    /// The launcher environment, when `WORLD_SIZE` is set; `RANK`, `MASTER_ADDR` and
    /// `MASTER_PORT` must then be set too (`LOCAL_RANK` defaults to `RANK`).
    pub fn from_env() -> Result<Option<Launch>> {
        Launch::from_vars(|k| std::env::var(k).ok())
    }

    /// `from_env` over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
        let Some(world) = var("WORLD_SIZE") else {
            return Ok(None);
        };
        let number = |k: &str, v: &str| -> Result<usize> {
            v.trim().parse().with_context(|| format!("{k}={v:?} is not a whole number"))
        };
        let world = number("WORLD_SIZE", &world)?;
        ensure!(world >= 1, "WORLD_SIZE=0: a run has at least one process");
        let need = |k: &str| {
            var(k).with_context(|| {
                format!("WORLD_SIZE is set ({world} processes) but {k} is not: set {}, as torchrun does", ENV.join(", "))
            })
        };
        let rank = number("RANK", &need("RANK")?)?;
        ensure!(rank < world, "RANK={rank} is not below WORLD_SIZE={world}");
        let local_rank = match var("LOCAL_RANK") {
            Some(v) => number("LOCAL_RANK", &v)?,
            None => rank,
        };
        let master_addr = need("MASTER_ADDR")?;
        ensure!(!master_addr.trim().is_empty(), "MASTER_ADDR is empty");
        let port = need("MASTER_PORT")?;
        let master_port: u16 = port
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| format!("MASTER_PORT={port:?} is not a port number (1–65535)"))?;
        let agent_store = var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True");
        let restarts = match var("TORCHELASTIC_RESTART_COUNT") {
            Some(v) => number("TORCHELASTIC_RESTART_COUNT", &v)? as u32,
            None => 0,
        };
        Ok(Some(Launch {
            rank,
            world,
            local_rank,
            master_addr,
            master_port,
            agent_store,
            restarts,
        }))
    }
}

impl Launch {
    /// The device this rank trains on, given the one asked for: on CUDA, one GPU a rank, by
    /// its place on the machine (torchrun's convention: `cuda:LOCAL_RANK`).
    pub fn device(&self, asked: Device) -> Device {
        if asked.is_cuda() {
            Device::Cuda(self.local_rank)
        } else {
            asked
        }
    }
}

/// Whether this process reports and writes: the only one (no group), or rank 0 of its group.
pub fn leads(group: Option<&Group>) -> bool {
    group.is_none_or(|g| g.rank == 0)
}

/// A TCP store hosted by this process for ranks that join it as clients, as a launcher's agent
/// hosts one (torchrun's, with `TORCHELASTIC_USE_AGENT_STORE=True` in the ranks).
pub struct StoreHost(*mut c_void);

impl StoreHost {
    pub fn new(port: u16, timeout: Duration) -> Result<StoreHost> {
        let mut h = std::ptr::null_mut();
        let ms = timeout.as_millis().min(i64::MAX as u128) as i64;
        call(|err, len| unsafe { storyvis_dist_store_host(port as c_int, ms, &mut h, err, len) })
            .map_err(|e| anyhow::anyhow!("hosting a store at port {port}: {e}"))?;
        Ok(StoreHost(h))
    }
}

impl Drop for StoreHost {
    fn drop(&mut self) {
        // SAFETY: the handle came from storyvis_dist_store_host and is freed once.
        unsafe { storyvis_dist_store_free(self.0) }
    }
}

/// A process group: this process and the others of the run.
pub struct Group {
    handle: *mut c_void,
    rank: usize,
    world: usize,
    timeout: Duration,
    /// Where the group's own small tensors (flags, numbers) live: NCCL takes CUDA tensors only.
    scalars: Device,
}

// SAFETY: c10d's process groups are used from any thread (gloo runs its work on its own threads;
// calls here are made one at a time by the training loop).
unsafe impl Send for Group {}
unsafe impl Sync for Group {}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: the handle came from storyvis_dist_init and is freed once.
        unsafe { storyvis_dist_free(self.handle) }
    }
}

impl Group {
    /// Joins the run's group through its TCP store, waiting up to `timeout` for every rank.
    pub fn join(launch: &Launch, backend: Backend, timeout: Duration) -> Result<Group> {
        let host = CString::new(launch.master_addr.trim()).context("MASTER_ADDR holds a NUL")?;
        let prefix = CString::new(format!("storyvis/{}", launch.restarts)).expect("no NUL");
        let serve = launch.rank == 0 && !launch.agent_store;
        let mut handle = std::ptr::null_mut();
        let ms = timeout.as_millis().min(i64::MAX as u128) as i64;
        call(|err, len| unsafe {
            storyvis_dist_init(
                host.as_ptr(),
                launch.master_port as c_int,
                launch.rank as c_int,
                launch.world as c_int,
                serve as c_int,
                prefix.as_ptr(),
                (backend == Backend::Nccl) as c_int,
                ms,
                &mut handle,
                err,
                len,
            )
        })
        .map_err(|e| {
            anyhow::anyhow!(
                "rank {} of {}: could not join the process group at {}:{} ({backend:?}): {e}",
                launch.rank,
                launch.world,
                launch.master_addr,
                launch.master_port
            )
        })?;
        let scalars =
            if backend == Backend::Nccl { Device::Cuda(launch.local_rank) } else { Device::Cpu };
        Ok(Group { handle, rank: launch.rank, world: launch.world, timeout, scalars })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    /// The error of a collective that failed: another rank has exited or stopped answering.
    fn lost(&self, what: &str, e: String) -> anyhow::Error {
        anyhow::anyhow!(
            "rank {} of {}: {what} failed (another rank has probably exited or stopped answering; waited at most {} s): {e}; this rank stops without saving (the last checkpoint is kept)",
            self.rank,
            self.world,
            self.timeout.as_secs()
        )
    }

    fn check_dense(t: &Tensor) -> Result<()> {
        ensure!(t.is_contiguous(), "a collective needs a contiguous tensor");
        Ok(())
    }

    /// Sums `t` over the ranks, in place.
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        self.all_reduce(t, 0, "summing across ranks")
    }

    /// The element-wise maximum of `t` over the ranks, in place.
    pub fn all_reduce_max(&self, t: &Tensor) -> Result<()> {
        self.all_reduce(t, 1, "taking a maximum across ranks")
    }

    fn all_reduce(&self, t: &Tensor, op: c_int, what: &str) -> Result<()> {
        Group::check_dense(t)?;
        call(|err, len| unsafe { storyvis_dist_allreduce(self.handle, t.as_ptr(), op, err, len) })
            .map_err(|e| self.lost(what, e))
    }

    /// The mean of `t` over the ranks, in place.
    pub fn all_reduce_mean(&self, t: &mut Tensor) -> Result<()> {
        self.all_reduce_sum(t)?;
        tch::no_grad(|| {
            let _ = t.g_div_scalar_(self.world as f64);
        });
        Ok(())
    }

    /// Every rank's `t` becomes rank `root`'s, in place.
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        Group::check_dense(t)?;
        call(|err, len| unsafe {
            storyvis_dist_broadcast(self.handle, t.as_ptr(), root as c_int, err, len)
        })
        .map_err(|e| self.lost("a broadcast from rank 0", e))
    }

    /// Waits until every rank is here.
    pub fn barrier(&self) -> Result<()> {
        call(|err, len| unsafe { storyvis_dist_barrier(self.handle, err, len) })
            .map_err(|e| self.lost("waiting for every rank", e))
    }

    /// For each flag, whether it holds on any rank (every rank gets the same answer).
    pub fn any_of(&self, flags: &[bool]) -> Result<Vec<bool>> {
        let v: Vec<f32> = flags.iter().map(|&f| f as i32 as f32).collect();
        let t = Tensor::from_slice(&v).to_device(self.scalars);
        self.all_reduce_max(&t)?;
        Ok((0..flags.len()).map(|i| t.double_value(&[i as i64]) > 0.0).collect())
    }

    /// Whether `flag` holds on any rank.
    pub fn any(&self, flag: bool) -> Result<bool> {
        Ok(self.any_of(&[flag])?[0])
    }

    /// Rank 0's `value`, on every rank (through the store: any length, no device).
    pub fn share(&self, key: &str, value: Option<&[u8]>) -> Result<Vec<u8>> {
        let k = CString::new(key).context("a store key holds a NUL")?;
        if self.rank == 0 {
            let v = value.context("rank 0 shares a value")?;
            call(|err, len| unsafe {
                storyvis_dist_set(self.handle, k.as_ptr(), v.as_ptr(), v.len(), err, len)
            })
            .map_err(|e| self.lost("writing to the store", e))?;
            return Ok(v.to_vec());
        }
        let mut buf = vec![0u8; 4096];
        loop {
            let mut n = 0usize;
            call(|err, len| unsafe {
                storyvis_dist_get(
                    self.handle,
                    k.as_ptr(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut n,
                    err,
                    len,
                )
            })
            .map_err(|e| self.lost("reading rank 0's value from the store", e))?;
            if n <= buf.len() {
                buf.truncate(n);
                return Ok(buf);
            }
            buf = vec![0u8; n];
        }
    }

    /// Rank 0's path, on every rank (`path`: rank 0's; the others give None).
    pub fn share_path(&self, key: &str, path: Option<&Path>) -> Result<PathBuf> {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let bytes = self.share(key, path.map(|p| p.as_os_str().as_bytes()))?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
    }

    /// Broadcasts a number from rank 0.
    pub fn broadcast_i64(&self, v: i64) -> Result<i64> {
        let t = Tensor::from_slice(&[v]).to_device(self.scalars);
        self.broadcast(&t, 0)?;
        Ok(t.int64_value(&[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn the_launcher_environment_is_read_as_torchrun_sets_it() {
        assert_eq!(Launch::from_vars(vars(&[])).unwrap(), None);
        let l = Launch::from_vars(vars(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29500"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            l,
            Launch {
                rank: 3,
                world: 4,
                local_rank: 1,
                master_addr: "node0".into(),
                master_port: 29500,
                agent_store: false,
                restarts: 0,
            }
        );
        let agent = Launch::from_vars(vars(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "0"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "29400"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ]))
        .unwrap()
        .unwrap();
        assert!(agent.agent_store);
        assert_eq!(agent.restarts, 2);
        let base = [("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_ADDR", "h")];
        // LOCAL_RANK defaults to RANK.
        let mut v = base.to_vec();
        v.push(("MASTER_PORT", "1234"));
        assert_eq!(Launch::from_vars(vars(&v)).unwrap().unwrap().local_rank, 1);
        let err = |pairs: &[(&str, &str)]| Launch::from_vars(vars(pairs)).unwrap_err().to_string();
        assert!(err(&base).contains("MASTER_PORT is not"), "{}", err(&base));
        let mut bad = base.to_vec();
        bad.push(("MASTER_PORT", "99999"));
        assert!(err(&bad).contains("not a port number"));
        assert!(err(&[("WORLD_SIZE", "2"), ("RANK", "2")]).contains("not below"));
        assert!(err(&[("WORLD_SIZE", "two")]).contains("not a whole number"));
        assert!(err(&[("WORLD_SIZE", "0")]).contains("at least one"));
    }

    #[test]
    fn backends_are_named_as_in_pytorch() {
        assert_eq!("gloo".parse::<Backend>().unwrap(), Backend::Gloo);
        assert_eq!("nccl".parse::<Backend>().unwrap(), Backend::Nccl);
        assert!("mpi".parse::<Backend>().is_err());
        assert_eq!(Backend::for_device(Device::Cpu), Backend::Gloo);
        assert_eq!(Backend::for_device(Device::Cuda(0)), Backend::Nccl);
    }

    /// A group of one process: every collective is the identity, and the store round-trips.
    #[test]
    fn a_group_of_one_is_the_identity() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let l = Launch {
            rank: 0,
            world: 1,
            local_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: port,
            agent_store: false,
            restarts: 0,
        };
        let g = Group::join(&l, Backend::Gloo, Duration::from_secs(30)).unwrap();
        let mut t = Tensor::from_slice(&[1.5f32, -2.0, 3.0]);
        g.all_reduce_mean(&mut t).unwrap();
        assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![1.5, -2.0, 3.0]);
        g.broadcast(&t, 0).unwrap();
        g.barrier().unwrap();
        assert!(g.any(true).unwrap());
        assert!(!g.any(false).unwrap());
        assert_eq!(g.share("k", Some(b"value")).unwrap(), b"value");
        assert_eq!(g.broadcast_i64(42).unwrap(), 42);
    }

    /// Two ranks (two threads of this process, as two processes would be): sums, maxima and
    /// broadcasts against their closed forms, and rank 0's value through the store.
    #[test]
    fn two_ranks_sum_and_broadcast() {
        two_ranks(false);
    }

    /// The same with the store hosted by someone else (torchrun's agent), every rank a client.
    #[test]
    fn two_ranks_meet_at_a_launchers_store() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let _agent = StoreHost::new(port, Duration::from_secs(30)).unwrap();
        two_ranks_at(port, true);
    }

    fn two_ranks(agent_store: bool) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        two_ranks_at(port, agent_store);
    }

    fn two_ranks_at(port: u16, agent_store: bool) {
        let ranks: Vec<_> = (0..2)
            .map(|rank| {
                std::thread::spawn(move || {
                    let l = Launch {
                        rank,
                        world: 2,
                        local_rank: rank,
                        master_addr: "127.0.0.1".into(),
                        master_port: port,
                        agent_store,
                        restarts: 1,
                    };
                    let g = Group::join(&l, Backend::Gloo, Duration::from_secs(30)).unwrap();
                    let r = rank as f32;
                    let mut t = Tensor::from_slice(&[1.0 + r, 10.0 * r]);
                    g.all_reduce_mean(&mut t).unwrap();
                    let m = Tensor::from_slice(&[r, -r]);
                    g.all_reduce_max(&m).unwrap();
                    let b = Tensor::from_slice(&[7.0 + r]);
                    g.broadcast(&b, 0).unwrap();
                    let any = g.any(rank == 1).unwrap();
                    assert_eq!(g.any_of(&[false, rank == 0]).unwrap(), vec![false, true]);
                    let shared = g.share("run_dir", (rank == 0).then_some(&b"runs/x-0001"[..]));
                    g.barrier().unwrap();
                    (
                        Vec::<f32>::try_from(&t).unwrap(),
                        Vec::<f32>::try_from(&m).unwrap(),
                        b.double_value(&[0]),
                        any,
                        shared.unwrap(),
                    )
                })
            })
            .collect();
        for h in ranks {
            let (mean, max, b, any, shared) = h.join().unwrap();
            assert_eq!(mean, vec![1.5, 5.0]);
            assert_eq!(max, vec![1.0, 0.0]);
            assert_eq!(b, 7.0);
            assert!(any);
            assert_eq!(shared, b"runs/x-0001");
        }
    }
}
