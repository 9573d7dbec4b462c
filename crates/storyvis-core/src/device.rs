//! Devices and the libtorch runtime: `--device cpu|cuda|cuda:N`, with CUDA loaded only when
//! asked for, so one binary serves CPU-only installs and GPU machines.

use anyhow::{bail, ensure, Context, Result};
use std::fmt;
pub use tch::Device;
use tch::{Kind, Tensor};

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
            if e.is_null() {
                "unknown error".into()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
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
    ensure!(
        count > 0,
        "CUDA was asked for, but no CUDA device is visible (nvidia-smi, CUDA_VISIBLE_DEVICES)"
    );
    ensure!(
        (index as i64) < count,
        "cuda:{index} asked for, but only {count} CUDA device(s) are visible"
    );
    // Our shapes are fixed per run: let cuDNN time its algorithms once and keep the fastest.
    tch::Cuda::cudnn_set_benchmark(true);
    Ok(Device::Cuda(index))
}

/// The version in libtorch's build settings (`TORCH_VERSION=2.11.0` in `at::show_config()`).
pub fn torch_version_of(config: &str) -> Option<&str> {
    let at = config.find("TORCH_VERSION=")? + "TORCH_VERSION=".len();
    let rest = &config[at..];
    let end = rest.find(|c: char| c == ',' || c.is_whitespace()).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|v| !v.is_empty())
}

/// Checks the libtorch loaded at run time against the one this build needs; returns its
/// version and path. (On GPU machines another build of libtorch is put first on the loader
/// path: it must be the same version.)
pub fn check_loaded_libtorch() -> Result<(String, String)> {
    let (config, path) = crate::precision::loaded_libtorch()?;
    let version = torch_version_of(&config).with_context(|| {
        format!("the loaded libtorch ({path}) does not report TORCH_VERSION in its build settings")
    })?;
    check_version(version, &path)?;
    Ok((version.to_string(), path))
}

fn check_version(version: &str, path: &str) -> Result<()> {
    // "2.11.0" or "2.11.0+cu130": the release must match; the local build tag may differ.
    let release = version.split('+').next().unwrap_or(version);
    ensure!(
        release == LIBTORCH_VERSION,
        "the libtorch loaded from {path} is version {version}, but storyvis is built for {LIBTORCH_VERSION} (tch 0.24): \
         put torch {LIBTORCH_VERSION}'s lib folder first on LD_LIBRARY_PATH, or rerun scripts/setup"
    );
    Ok(())
}

/// What `storyvis doctor` prints.
pub struct RuntimeReport {
    /// The loaded libtorch's version (from its own build settings) and library path.
    pub libtorch: String,
    pub library: String,
    pub device: Device,
    pub threads: i32,
    pub mkl: bool,
    pub openmp: bool,
    pub cuda_devices: i64,
    pub cudnn: bool,
    /// Largest |difference| between a 64×64 matmul on the device and a naive loop.
    pub matmul_error: f64,
}

/// The largest |got − a·b| over an n×n product, with a·b computed by a naive loop in f64.
fn matmul_error(a: &[f64], b: &[f64], got: &[f64], n: usize) -> f64 {
    let mut err: f64 = 0.0;
    for i in 0..n {
        for j in 0..n {
            let want: f64 = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
            err = err.max((got[i * n + j] - want).abs());
        }
    }
    err
}

/// Checks that libtorch computes correctly on `device` and reports the runtime.
pub fn runtime_report(device: Device) -> Result<RuntimeReport> {
    let (libtorch, library) = check_loaded_libtorch()?;
    let n = 64i64;
    let a: Vec<f64> = (0..n * n).map(|i| ((i * 37 % 101) as f64 - 50.0) / 50.0).collect();
    let b: Vec<f64> = (0..n * n).map(|i| ((i * 53 % 97) as f64 - 48.0) / 48.0).collect();
    let ta = Tensor::from_slice(&a).view([n, n]).to_device(device);
    let tb = Tensor::from_slice(&b).view([n, n]).to_device(device);
    let prod = ta.matmul(&tb).to_device(Device::Cpu).to_kind(Kind::Double);
    let got: Vec<f64> =
        Vec::<f64>::try_from(prod.view([-1])).context("reading the matmul result")?;
    let err = matmul_error(&a, &b, &got, n as usize);
    ensure!(err < 1e-9, "libtorch computed a wrong matrix product on {device:?} (error {err})");
    let cuda = !matches!(device, Device::Cpu);
    Ok(RuntimeReport {
        libtorch,
        library,
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
        writeln!(
            f,
            "libtorch     {} loaded from {} (built for {LIBTORCH_VERSION}, tch 0.24)",
            self.libtorch, self.library
        )?;
        writeln!(f, "device       {:?}", self.device)?;
        writeln!(f, "cpu threads  {}", self.threads)?;
        writeln!(f, "mkl          {}", self.mkl)?;
        writeln!(f, "openmp       {}", self.openmp)?;
        if !matches!(self.device, Device::Cpu) {
            writeln!(f, "cuda devices {}", self.cuda_devices)?;
            writeln!(f, "cudnn        {}", self.cudnn)?;
        }
        write!(
            f,
            "check        64×64 matmul matches a naive loop (max error {:.1e})",
            self.matmul_error
        )
    }
}

/// Limits the CPU threads storyvis uses to `n`: libtorch's intra-op and inter-op pools and
/// rayon's global pool (data loading, decoding, scoring). Call once, before any work.
pub fn set_threads(n: usize) -> Result<()> {
    anyhow::ensure!((1..=1024).contains(&n), "--threads must be 1..1024, got {n}");
    tch::set_num_threads(n as i32);
    tch::set_num_interop_threads(n as i32);
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| anyhow::anyhow!("cannot set the data threads to {n}: {e}"))
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
    fn the_matmul_check_catches_a_wrong_product() {
        let n = 3;
        let a: Vec<f64> = (0..9).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..9).map(|i| (i * i) as f64 - 4.0).collect();
        let mut c = vec![0.0; 9];
        for i in 0..n {
            for j in 0..n {
                c[i * n + j] = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
            }
        }
        assert_eq!(matmul_error(&a, &b, &c, n), 0.0);
        c[5] += 1e-6;
        assert!((matmul_error(&a, &b, &c, n) - 1e-6).abs() < 1e-12);
    }

    #[test]
    fn the_loaded_libtorch_is_read_from_the_library() {
        assert_eq!(
            torch_version_of("Build settings: BLAS_INFO=mkl, TORCH_VERSION=2.11.0, USE_CUDA=ON"),
            Some("2.11.0")
        );
        assert_eq!(
            torch_version_of("  - CPU capability usage: AVX2\n TORCH_VERSION=2.10.1\n"),
            Some("2.10.1")
        );
        assert_eq!(torch_version_of("no version here"), None);
        assert!(check_version("2.11.0+cu130", "x").is_ok());
        let e = check_version("2.10.0", "/opt/torch/lib/libtorch_cpu.so").unwrap_err().to_string();
        assert!(
            e.contains("version 2.10.0") && e.contains("/opt/torch/lib/libtorch_cpu.so"),
            "{e}"
        );
        // The library this test process loaded: libtorch_cpu.so of the setup's venv.
        let (version, path) = check_loaded_libtorch().unwrap();
        assert!(path.ends_with("libtorch_cpu.so"), "{path}");
        let r = runtime_report(Device::Cpu).unwrap();
        assert_eq!((r.libtorch.as_str(), r.library.as_str()), (version.as_str(), path.as_str()));
        assert!(
            r.to_string().contains(&format!("libtorch     {version} loaded from {path}")),
            "{r}"
        );
    }
}
