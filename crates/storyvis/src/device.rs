//! Devices and the libtorch runtime: `--device cpu|cuda|cuda:N`, with CUDA loaded only when
//! asked for, so one binary serves CPU-only installs and GPU machines.

use anyhow::{bail, ensure, Context, Result};
use std::fmt;
use tch::{Device, Kind, Tensor};

/// The libtorch version this build is pinned to (tch =0.24.0 requires it exactly).
pub const LIBTORCH_VERSION: &str = "2.11.0";

/// `libtorch_cuda.so` is linked by nothing we call directly, so the linker drops it and CUDA
/// looks absent. Loading it (globally) registers the CUDA backend with libtorch.
fn load_cuda_backend() -> Result<()> {
    let name = c"libtorch_cuda.so";
    // SAFETY: dlopen with a valid NUL-terminated name; the handle is kept for the process.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local C string or null.
        let why = unsafe {
            let e = libc::dlerror();
            if e.is_null() { "unknown error".into() } else { std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned() }
        };
        bail!(
            "CUDA was asked for, but libtorch_cuda.so could not be loaded ({why}). This install is \
             probably CPU-only: run `scripts/setup --cuda`, or put a CUDA build of torch \
             {LIBTORCH_VERSION}'s lib folder on LD_LIBRARY_PATH"
        );
    }
    Ok(())
}

/// Parses `cpu`, `cuda` or `cuda:N` and makes sure the device can be used.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let index = match spec.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .with_context(|| format!("bad device {spec:?}: use cpu, cuda or cuda:N"))?,
        None => bail!("unknown device {spec:?}: use cpu, cuda or cuda:N"),
    };
    load_cuda_backend()?;
    let count = tch::Cuda::device_count();
    ensure!(count > 0, "CUDA was asked for, but no CUDA device is visible (nvidia-smi, CUDA_VISIBLE_DEVICES)");
    ensure!((index as i64) < count, "cuda:{index} asked for, but only {count} CUDA device(s) are visible");
    // Our shapes are fixed per run: let cuDNN time its algorithms once and keep the fastest.
    tch::Cuda::cudnn_set_benchmark(true);
    Ok(Device::Cuda(index))
}

/// What `storyvis doctor` prints.
pub struct RuntimeReport {
    pub device: Device,
    pub threads: i32,
    pub mkl: bool,
    pub openmp: bool,
    pub cuda_devices: i64,
    pub cudnn: bool,
    /// Largest |difference| between a 64×64 matmul on the device and a naive loop.
    pub matmul_error: f64,
}

/// Checks that libtorch computes correctly on `device` and reports the runtime.
pub fn runtime_report(device: Device) -> Result<RuntimeReport> {
    let n = 64i64;
    let a: Vec<f64> = (0..n * n).map(|i| ((i * 37 % 101) as f64 - 50.0) / 50.0).collect();
    let b: Vec<f64> = (0..n * n).map(|i| ((i * 53 % 97) as f64 - 48.0) / 48.0).collect();
    let ta = Tensor::from_slice(&a).view([n, n]).to_device(device);
    let tb = Tensor::from_slice(&b).view([n, n]).to_device(device);
    let prod = ta.matmul(&tb).to_device(Device::Cpu).to_kind(Kind::Double);
    let got: Vec<f64> = Vec::<f64>::try_from(prod.view([-1])).context("reading the matmul result")?;
    let n = n as usize;
    let mut err: f64 = 0.0;
    for i in 0..n {
        for j in 0..n {
            let want: f64 = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
            err = err.max((got[i * n + j] - want).abs());
        }
    }
    ensure!(err < 1e-9, "libtorch computed a wrong matrix product on {device:?} (error {err})");
    let cuda = !matches!(device, Device::Cpu);
    Ok(RuntimeReport {
        device,
        threads: tch::get_num_threads(),
        mkl: tch::utils::has_mkl(),
        openmp: tch::utils::has_openmp(),
        cuda_devices: if cuda { tch::Cuda::device_count() } else { 0 },
        cudnn: cuda && tch::Cuda::cudnn_is_available(),
        matmul_error: err,
    })
}

impl fmt::Display for RuntimeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "libtorch     {LIBTORCH_VERSION} (tch 0.24)")?;
        writeln!(f, "device       {:?}", self.device)?;
        writeln!(f, "cpu threads  {}", self.threads)?;
        writeln!(f, "mkl          {}", self.mkl)?;
        writeln!(f, "openmp       {}", self.openmp)?;
        if !matches!(self.device, Device::Cpu) {
            writeln!(f, "cuda devices {}", self.cuda_devices)?;
            writeln!(f, "cudnn        {}", self.cudnn)?;
        }
        write!(f, "check        64×64 matmul matches a naive loop (max error {:.1e})", self.matmul_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        for bad in ["gpu", "cuda:", "cuda:x", "cuda0", ""] {
            let e = parse_device(bad).unwrap_err().to_string();
            assert!(e.contains("cpu, cuda or cuda:N"), "{bad}: {e}");
        }
    }

    #[test]
    fn cpu_runtime_computes_correctly() {
        let r = runtime_report(Device::Cpu).unwrap();
        assert!(r.matmul_error < 1e-9 && r.threads >= 1);
        assert!(r.to_string().contains("2.11.0"));
    }
}
